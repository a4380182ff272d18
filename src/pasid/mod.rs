//! PASID attach and SVA binding of process address spaces.
