//! MQTT side of the daemon (DESIGN.md section 6): topic names, command parsing and
//! payloads (pure), reconnect backoff (pure), the board's identity, the dead-letter
//! file, and the link that owns the connection.

pub mod backoff;
pub mod deadletter;
#[cfg(test)]
mod fuzz;
pub mod homeassistant;
pub mod identity;
pub mod link;
pub mod messages;
pub mod topics;
