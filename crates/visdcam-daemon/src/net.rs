//! Name resolution with a bound. `getaddrinfo` blocks for as long as the resolver configuration
//! lets it (`timeout × attempts × servers × search domains`: minutes with a silent DNS server),
//! and cannot be cancelled; a daemon that must keep its watchdog fed resolves on a helper thread
//! and stops waiting after a limit (the helper finishes, or not, on its own).

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::time::Duration;

/// `host:port` through the system resolver, waiting at most `limit`.
pub fn resolve(host: &str, port: u16, limit: Duration) -> io::Result<Vec<SocketAddr>> {
    let host = host.to_string();
    resolve_with(
        move || {
            (host.as_str(), port)
                .to_socket_addrs()
                .map(Iterator::collect)
        },
        limit,
    )
}

/// Runs `lookup` on a helper thread and waits at most `limit` for its answer; a lookup still
/// running then is a `TimedOut` error (the thread is left to finish by itself).
pub fn resolve_with<F>(lookup: F, limit: Duration) -> io::Result<Vec<SocketAddr>>
where
    F: FnOnce() -> io::Result<Vec<SocketAddr>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("resolve".into())
        .spawn(move || {
            let _ = tx.send(lookup());
        })?;
    match rx.recv_timeout(limit) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no answer from the name resolver within {} s",
                limit.as_secs_f64()
            ),
        )),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err(io::Error::other("the name lookup thread died"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_lookup_that_never_answers_is_cut_at_the_limit() {
        let t = Instant::now();
        let e = resolve_with(
            || {
                std::thread::sleep(Duration::from_secs(30));
                Ok(vec![])
            },
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("0.3 s"), "{e}");
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }

    #[test]
    fn answers_and_errors_within_the_limit_pass_through() {
        let a: SocketAddr = "127.0.0.1:81".parse().unwrap();
        assert_eq!(
            resolve_with(move || Ok(vec![a]), Duration::from_secs(5)).unwrap(),
            [a]
        );
        let e = resolve_with(
            || Err(io::Error::new(io::ErrorKind::NotFound, "no such host")),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(
            resolve("127.0.0.1", 81, Duration::from_secs(5)).unwrap(),
            [a]
        );
    }
}
