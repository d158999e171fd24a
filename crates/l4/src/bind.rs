//! Sockets for frontends: SO_REUSEADDR (a restarted agent rebinds at once despite TIME_WAIT),
//! non-blocking, handed to tokio.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};

fn socket(addr: SocketAddr, ty: Type) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, None)?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// A listening TCP socket on `addr`. Must be called within a tokio runtime.
pub(super) fn tcp(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = socket(addr, Type::STREAM)?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    TcpListener::from_std(socket.into())
}

/// A bound UDP socket on `addr`. Must be called within a tokio runtime.
pub(super) fn udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    UdpSocket::from_std(socket(addr, Type::DGRAM)?.into())
}
