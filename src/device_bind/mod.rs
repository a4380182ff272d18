//! Device binding: devices joining an iommufd context, their isolation groups
//! (a first-class, inspectable object) and the one place where an attach
//! decides compatibility with an IOAS and its domains. Arrives with the IOAS
//! core (mock devices) and the negotiation/freeze work.
