//! Reading the Docker CLI's context store and Podman's system connections.
