//! The supervisor: tenant registry, router and restarter.

pub(crate) mod actor;
pub(crate) mod messages;
