//! Tunnels through the user's OpenSSH client.
