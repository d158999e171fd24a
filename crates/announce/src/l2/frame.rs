//! Ethernet framing shared by the ARP and NDP codecs.

use std::fmt;

pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETH_HEADER_LEN: usize = 14;
/// Shortest Ethernet frame without the FCS; shorter frames are padded with zeros.
pub const ETH_MIN_LEN: usize = 60;

/// A MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    pub const ZERO: Mac = Mac([0; 6]);

    pub fn from_slice(b: &[u8]) -> Option<Mac> {
        Some(Mac(b.get(..6)?.try_into().ok()?))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid MAC address {0:?}: expected six hex bytes separated by ':'")]
pub struct InvalidMac(pub String);

impl std::str::FromStr for Mac {
    type Err = InvalidMac;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidMac(s.to_owned());
        let mut out = [0u8; 6];
        let mut parts = s.trim().split(':');
        for b in &mut out {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Mac(out))
    }
}

/// Why a received frame was not understood. Such frames are ignored (they are someone else's
/// traffic or garbage), never answered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Malformed {
    #[error("frame too short: {got} bytes, {need} needed")]
    Truncated { need: usize, got: usize },
    #[error("ethertype {0:#06x} is not the one expected")]
    EtherType(u16),
    #[error("unsupported {what}: {value}")]
    Unsupported { what: &'static str, value: u32 },
    #[error("bad ICMPv6 checksum")]
    Checksum,
}

pub(crate) fn need(buf: &[u8], n: usize) -> Result<(), Malformed> {
    if buf.len() < n {
        Err(Malformed::Truncated {
            need: n,
            got: buf.len(),
        })
    } else {
        Ok(())
    }
}

pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// An Ethernet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthHeader {
    pub dst: Mac,
    pub src: Mac,
    pub ethertype: u16,
}

impl EthHeader {
    pub fn parse(frame: &[u8]) -> Result<EthHeader, Malformed> {
        need(frame, ETH_HEADER_LEN)?;
        Ok(EthHeader {
            dst: Mac::from_slice(&frame[0..6]).expect("length checked"),
            src: Mac::from_slice(&frame[6..12]).expect("length checked"),
            ethertype: be16(frame, 12),
        })
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.dst.0);
        out.extend_from_slice(&self.src.0);
        out.extend_from_slice(&self.ethertype.to_be_bytes());
    }
}

pub(crate) fn pad(mut frame: Vec<u8>) -> Vec<u8> {
    if frame.len() < ETH_MIN_LEN {
        frame.resize(ETH_MIN_LEN, 0);
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trips_through_text() {
        let m: Mac = "02:00:5e:10:00:0a".parse().expect("valid");
        assert_eq!(m, Mac([2, 0, 0x5e, 0x10, 0, 0x0a]));
        assert_eq!(m.to_string(), "02:00:5e:10:00:0a");
        assert!("02:00:5e:10:00".parse::<Mac>().is_err());
        assert!("02:00:5e:10:00:0a:01".parse::<Mac>().is_err());
        assert!("zz:00:5e:10:00:0a".parse::<Mac>().is_err());
    }

    #[test]
    fn short_frames_are_refused() {
        assert_eq!(
            EthHeader::parse(&[0; 13]),
            Err(Malformed::Truncated { need: 14, got: 13 })
        );
    }
}
