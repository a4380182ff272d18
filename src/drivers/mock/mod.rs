//! The mock IOMMU behind `IOMMU_TEST_CMD`, matching upstream's selftest driver.
