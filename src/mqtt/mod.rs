//! MQTT side of the daemon (DESIGN.md section 6): topic names, command parsing and
//! payloads (pure), reconnect backoff (pure), and the link that owns the connection.

pub mod backoff;
pub mod link;
pub mod messages;
pub mod topics;
