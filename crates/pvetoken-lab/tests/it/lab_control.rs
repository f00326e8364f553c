//! lab_control tests.
