//! The `mortar` node.
pub mod admin;
pub mod bench;
pub mod cli;
pub mod config;
pub mod driver;
pub mod http;
pub mod kv;
pub mod node_info;
pub mod server;
pub mod state_machine;
pub mod transport;
