//! The supervisor: tenant registry, router and restarter.

pub(crate) mod actor;
pub(crate) mod links;
pub(crate) mod messages;
