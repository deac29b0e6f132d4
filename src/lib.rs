//! rewind
