//! Sockets for frontends: SO_REUSEADDR (a restarted process rebinds at once despite
//! TIME_WAIT), optionally IP_FREEBIND (the address need not be on an interface), non-blocking,
//! handed to tokio.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};

fn socket(addr: SocketAddr, ty: Type, freebind: bool) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, None)?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
        if freebind {
            socket.set_freebind_v6(true)?;
        }
    } else if freebind {
        socket.set_freebind_v4(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// A listening TCP socket on `addr`. Must be called within a tokio runtime.
pub(crate) fn tcp(addr: SocketAddr, backlog: u32, freebind: bool) -> io::Result<TcpListener> {
    let socket = socket(addr, Type::STREAM, freebind)?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    TcpListener::from_std(socket.into())
}

/// A bound UDP socket on `addr`. Must be called within a tokio runtime.
pub(crate) fn udp(addr: SocketAddr, freebind: bool) -> io::Result<UdpSocket> {
    UdpSocket::from_std(socket(addr, Type::DGRAM, freebind)?.into())
}
