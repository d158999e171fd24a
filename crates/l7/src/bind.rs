//! Binding the Ingress listeners. `TcpListener::bind` listens with a backlog of 128 (std's and
//! mio's value): under a burst of new connections the kernel drops the SYNs past it and clients
//! retry after a second (5,000 connects took 32.8 s against nginx's 2.2 s). Portico listens with
//! the system's `net.core.somaxconn` instead, as nginx does.

use std::io;
use std::net::SocketAddr;

use portico_runtime::limits::listen_backlog;
use socket2::{Domain, Socket, Type};
use tokio::net::TcpListener;

/// A listening socket on `addr` (`SO_REUSEADDR`, as `TcpListener::bind` sets) with the
/// system's listen backlog.
pub fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(listen_backlog()).unwrap_or(i32::MAX))?;
    TcpListener::from_std(socket.into())
}
