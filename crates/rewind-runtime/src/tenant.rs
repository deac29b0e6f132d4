//! One tenant: its actor, its messages, its typed handle, and the cells the
//! actor publishes to.

pub(crate) mod actor;
pub(crate) mod handle;
pub(crate) mod messages;
pub(crate) mod shared;
