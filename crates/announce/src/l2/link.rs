//! Raw Ethernet access to one interface: an `AF_PACKET` socket bound to it (Linux; needs
//! `CAP_NET_RAW`), and the interface's index and MAC address.
//!
//! The only `unsafe` of the announcer lives here: filling in the `sockaddr_ll` that binds the
//! socket to the interface (socket2 has no safe constructor for it) and registering the socket
//! with the reactor.
#![allow(unsafe_code)]

use std::io::{self, Read, Write};
use std::net::Ipv6Addr;
use std::path::PathBuf;

use socket2::{Domain, Protocol, SockAddr, SockFilter, Socket, Type};
use tokio::io::unix::AsyncFd;

use super::frame::{ETHERTYPE_ARP, ETHERTYPE_IPV6, Mac};

/// A network interface, as the kernel names and numbers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    pub mac: Mac,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("interface {iface:?}: cannot read {what}")]
    Lookup {
        iface: String,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("interface {iface:?}: {what} {value:?} does not parse")]
    Parse {
        iface: String,
        what: &'static str,
        value: String,
    },
    #[error("interface {iface:?}: cannot open a packet socket (root or CAP_NET_RAW needed)")]
    Socket {
        iface: String,
        #[source]
        source: io::Error,
    },
}

impl Interface {
    /// Look `name` up in `/sys/class/net` (the network namespace of the caller).
    pub async fn lookup(name: &str) -> Result<Interface, LinkError> {
        let dir = PathBuf::from("/sys/class/net").join(name);
        let read = |what: &'static str| {
            let path = dir.join(what);
            let iface = name.to_owned();
            async move {
                tokio::fs::read_to_string(&path)
                    .await
                    .map(|s| s.trim().to_owned())
                    .map_err(|source| LinkError::Lookup {
                        iface,
                        what,
                        source,
                    })
            }
        };
        let index_text = read("ifindex").await?;
        let mac_text = read("address").await?;
        let parse_err = |what, value: &str| LinkError::Parse {
            iface: name.to_owned(),
            what,
            value: value.to_owned(),
        };
        let index = index_text
            .parse()
            .map_err(|_| parse_err("ifindex", &index_text))?;
        let mac = mac_text
            .parse()
            .map_err(|_| parse_err("address", &mac_text))?;
        Ok(Interface {
            name: name.to_owned(),
            index,
            mac,
        })
    }
}

/// Classic BPF: accept only IPv6 frames carrying ICMPv6 neighbour solicitations (next header
/// 58 at offset 20, ICMPv6 type 135 at offset 54), so the responder does not see every IPv6
/// packet of the interface.
const NS_FILTER: [SockFilter; 6] = [
    SockFilter::new(0x30, 0, 0, 20),  // ldb [20]
    SockFilter::new(0x15, 0, 3, 58),  // jeq #58, next, drop
    SockFilter::new(0x30, 0, 0, 54),  // ldb [54]
    SockFilter::new(0x15, 0, 1, 135), // jeq #135, accept, drop
    SockFilter::new(0x06, 0, 0, 0xffff),
    SockFilter::new(0x06, 0, 0, 0),
];

/// An `AF_PACKET` raw socket bound to one interface and one ethertype, non-blocking.
pub struct PacketSocket {
    fd: AsyncFd<Socket>,
}

impl PacketSocket {
    /// ARP frames of `iface`.
    pub fn arp(iface: &Interface) -> Result<PacketSocket, LinkError> {
        Self::open(iface, ETHERTYPE_ARP, None)
    }

    /// Neighbour solicitations arriving on `iface`.
    pub fn neighbour_solicitations(iface: &Interface) -> Result<PacketSocket, LinkError> {
        Self::open(iface, ETHERTYPE_IPV6, Some(&NS_FILTER))
    }

    fn open(
        iface: &Interface,
        ethertype: u16,
        filter: Option<&[SockFilter]>,
    ) -> Result<PacketSocket, LinkError> {
        let err = |source| LinkError::Socket {
            iface: iface.name.clone(),
            source,
        };
        let proto = i32::from(ethertype.to_be());
        let socket =
            Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(proto))).map_err(err)?;
        if let Some(filter) = filter {
            socket.attach_filter(filter).map_err(err)?;
        }
        socket
            .bind(&link_addr(iface.index, ethertype).map_err(err)?)
            .map_err(err)?;
        socket.set_nonblocking(true).map_err(err)?;
        // SAFETY: `Socket` owns its descriptor and always returns the same one from
        // `as_raw_fd`; the `AsyncFd` owns the `Socket`, so the descriptor stays open for as long
        // as it is registered.
        let fd = unsafe { AsyncFd::register(socket) }.map_err(|e| err(io::Error::from(e)))?;
        Ok(PacketSocket { fd })
    }

    /// Receive one frame into `buf`; returns its length.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|s| s.get_ref().read(buf)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Send one whole Ethernet frame out of the bound interface.
    pub async fn send(&self, frame: &[u8]) -> io::Result<()> {
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|s| s.get_ref().write(frame)) {
                Ok(Ok(n)) if n == frame.len() => return Ok(()),
                Ok(Ok(n)) => {
                    return Err(io::Error::other(format!(
                        "short write: {n} of {} bytes",
                        frame.len()
                    )));
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

/// A `sockaddr_ll` naming interface `index` and `ethertype`.
fn link_addr(index: u32, ethertype: u16) -> io::Result<SockAddr> {
    let index =
        i32::try_from(index).map_err(|_| io::Error::other("interface index out of range"))?;
    // SAFETY: `try_init` hands us zeroed storage of `sockaddr_storage` size, which is larger
    // than and suitably aligned for `sockaddr_ll`; we write only its fields and report its
    // exact length.
    let ((), addr) = unsafe {
        SockAddr::try_init(|storage, len| {
            let sll = storage.cast::<libc::sockaddr_ll>();
            (*sll).sll_family = libc::AF_PACKET as libc::sa_family_t;
            (*sll).sll_protocol = ethertype.to_be();
            (*sll).sll_ifindex = index;
            *len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            Ok(())
        })
    }?;
    Ok(addr)
}

/// Membership of one IPv6 multicast group on one interface, held for as long as the value
/// lives. Joining makes the kernel program the NIC's multicast filter, so solicitations for
/// an address that is on no interface still reach the packet socket.
pub struct GroupMembership {
    _socket: Socket,
}

impl GroupMembership {
    pub fn join(group: Ipv6Addr, iface: &Interface) -> io::Result<GroupMembership> {
        let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
        socket.join_multicast_v6(&group, iface.index)?;
        Ok(GroupMembership { _socket: socket })
    }
}
