//! Booting a Debian rootfs with systemd-nspawn and driving it from the host.
