//! TCP connections that carry the upload DSCP mark (`UPLOAD_DSCP`, CS1 by default), so
//! net-shaper can put upload traffic in its own class.
//!
//! ureq 3's own `TcpConnector` does not expose its socket, so this module has its own
//! connector and transport: connect (each resolved address in turn, within ureq's timeout),
//! set `IP_TOS`/`IPV6_TCLASS` to `dscp << 2`, then plain blocking reads and writes with ureq's
//! per-call timeouts. TLS is chained after it (`RustlsConnector`), as in ureq's default chain.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Weak};
use std::time::Duration;

use nix::sys::socket::{setsockopt, sockopt};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, ShutdownHandle,
    Transport,
};

/// Opens TCP connections with a DSCP mark (or none).
#[derive(Debug, Clone, Copy)]
pub struct MarkedTcpConnector {
    /// The DSCP code point (0..=63); `None` leaves the socket's default.
    pub dscp: Option<u8>,
}

impl<In: Transport> Connector<In> for MarkedTcpConnector {
    type Out = Either<In, MarkedTcpTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        if chained.is_some() {
            return Ok(chained.map(Either::A));
        }
        let timeout = details.timeout.not_zero().map(|d| *d);
        let mut last: Option<io::Error> = None;
        for addr in details.addrs.iter() {
            match connect_marked(*addr, timeout, self.dscp) {
                Ok(stream) => {
                    let config = details.config;
                    let transport = MarkedTcpTransport {
                        stream: Arc::new(stream),
                        buffers: LazyBuffers::new(
                            config.input_buffer_size(),
                            config.output_buffer_size(),
                        ),
                    };
                    let handle = Arc::downgrade(&transport.stream) as Weak<dyn ShutdownHandle>;
                    (details.register_shutdown)(handle)?;
                    return Ok(Some(Either::B(transport)));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) if e.kind() == io::ErrorKind::TimedOut => {
                ureq::Error::Timeout(ureq::Timeout::Connect)
            }
            Some(e) => ureq::Error::Io(e),
            None => ureq::Error::HostNotFound,
        })
    }
}

/// Connects to `addr` and marks the socket.
pub fn connect_marked(
    addr: SocketAddr,
    timeout: Option<Duration>,
    dscp: Option<u8>,
) -> io::Result<TcpStream> {
    let stream = match timeout {
        Some(t) => TcpStream::connect_timeout(&addr, t)?,
        None => TcpStream::connect(addr)?,
    };
    stream.set_nodelay(true)?;
    if let Some(dscp) = dscp {
        let tos = i32::from(dscp) << 2;
        let r = if addr.is_ipv4() {
            setsockopt(&stream, sockopt::Ipv4Tos, &tos)
        } else {
            setsockopt(&stream, sockopt::Ipv6TClass, &tos)
        };
        r.map_err(|e| io::Error::other(format!("setting the DSCP mark {dscp}: {e}")))?;
    }
    Ok(stream)
}

/// A marked TCP connection; reads and writes honour ureq's timeouts.
#[derive(Debug)]
pub struct MarkedTcpTransport {
    stream: Arc<TcpStream>,
    buffers: LazyBuffers,
}

/// Applies a ureq timeout to a socket; `Err` when it already expired.
fn apply(
    t: NextTimeout,
    set: impl FnOnce(Option<Duration>) -> io::Result<()>,
) -> Result<(), ureq::Error> {
    if !t.after.is_not_happening() && t.after.is_zero() {
        return Err(ureq::Error::Timeout(t.reason));
    }
    set(t.not_zero().map(|d| *d))?;
    Ok(())
}

fn io_error(e: io::Error, t: NextTimeout) -> ureq::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ureq::Error::Timeout(t.reason),
        _ => ureq::Error::Io(e),
    }
}

impl Transport for MarkedTcpTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let t = timeout.for_write();
        apply(t, |d| self.stream.set_write_timeout(d))?;
        let output = &self.buffers.output()[..amount];
        (&*self.stream)
            .write_all(output)
            .map_err(|e| io_error(e, t))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let t = timeout.for_read();
        apply(t, |d| self.stream.set_read_timeout(d))?;
        let input = self.buffers.input_append_buf();
        let n = loop {
            match (&*self.stream).read(input) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r.map_err(|e| io_error(e, t))?,
            }
        };
        self.buffers.input_appended(n);
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        // Open when a non-blocking read would block: no EOF, no error, no stray bytes.
        if self.stream.set_nonblocking(true).is_err() {
            return false;
        }
        let mut byte = [0u8; 1];
        let open = matches!(
            (&*self.stream).read(&mut byte),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
        );
        open && self.stream.set_nonblocking(false).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::getsockopt;
    use std::net::{Shutdown, TcpListener};

    #[test]
    fn sockets_carry_the_mark() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let s = connect_marked(addr, Some(Duration::from_secs(2)), Some(8)).unwrap();
        assert_eq!(
            getsockopt(&s, sockopt::Ipv4Tos).unwrap(),
            8 << 2,
            "CS1 = TOS 0x20"
        );
        let s = connect_marked(addr, None, None).unwrap();
        assert_eq!(getsockopt(&s, sockopt::Ipv4Tos).unwrap(), 0);
        let _ = s.shutdown(Shutdown::Both);
    }
}
