//! Reaching an engine that is not on this machine's own socket: TLS over
//! TCP, the user's OpenSSH (a forwarded socket), and the endpoints users
//! already configured for the Docker CLI (contexts) and Podman (system
//! connections).

pub mod ssh;
pub mod stores;
