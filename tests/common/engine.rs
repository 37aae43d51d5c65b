//! What the container-engine tests (docker, hazards) build their images
//! from: no registry is reachable, so every image is `FROM scratch`.

/// Debian's busybox-static: a static shell and coreutils for scratch images.
pub const BUSYBOX: &str = "/bin/busybox";

/// The image the engine tests run: busybox for a shell, undead as the
/// ENTRYPOINT in the form docker-init is invoked (`INIT -- CMD...`), and
/// /data for a volume.
pub const DOCKERFILE: &str = r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox --install -s /bin && mkdir -p /tmp /run /sbin /data"]
COPY undead /undead
ENTRYPOINT ["/undead", "--"]
"#;
