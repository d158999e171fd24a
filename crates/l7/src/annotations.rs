//! The ingress-nginx annotations Portico honours, parsed once per table build into typed options.
//! A value that does not parse is an error on its Ingress (the Ingress is not served, so a broken
//! allow-list never turns into "allow everyone"); an annotation Portico does not implement is
//! reported once and otherwise ignored.

#![allow(clippy::result_large_err)] // `Invalid` is the model's report type, built once per bad value.

use std::collections::BTreeMap;
use std::time::Duration;

use ipnet::IpNet;
use portico_model::{Invalid, ObjectKey};

pub const PREFIX: &str = "nginx.ingress.kubernetes.io/";

/// Every `nginx.ingress.kubernetes.io/*` annotation Portico implements.
pub const SUPPORTED: &[&str] = &[
    "affinity",
    "affinity-mode",
    "allowlist-source-range",
    "app-root",
    "backend-protocol",
    "canary",
    "canary-by-cookie",
    "canary-by-header",
    "canary-by-header-value",
    "canary-weight",
    "canary-weight-total",
    "force-ssl-redirect",
    "load-balance",
    "permanent-redirect",
    "permanent-redirect-code",
    "proxy-body-size",
    "proxy-connect-timeout",
    "proxy-next-upstream-tries",
    "proxy-read-timeout",
    "proxy-request-buffering",
    "proxy-send-timeout",
    "rewrite-target",
    "session-cookie-change-on-failure",
    "session-cookie-conditional-samesite-none",
    "session-cookie-domain",
    "session-cookie-expires",
    "session-cookie-max-age",
    "session-cookie-name",
    "session-cookie-path",
    "session-cookie-samesite",
    "session-cookie-secure",
    "ssl-redirect",
    "temporal-redirect",
    "temporal-redirect-code",
    "upstream-hash-by",
    "use-regex",
    "whitelist-source-range",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BackendProtocol {
    #[default]
    Http,
    Https,
    Grpc,
    Grpcs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Balance {
    #[default]
    RoundRobin,
    Ewma,
}

/// A request attribute `upstream-hash-by` hashes (the nginx variables people use).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashKey {
    RequestUri,
    Uri,
    RemoteAddr,
    Host,
    Header(http::HeaderName),
    Cookie(String),
    Arg(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SameSite {
    None,
    Lax,
    Strict,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Affinity {
    pub name: String,
    pub persistent: bool,
    pub path: Option<String>,
    pub domain: Option<String>,
    pub max_age: Option<u64>,
    pub expires: Option<u64>,
    pub samesite: Option<SameSite>,
    pub conditional_samesite_none: bool,
    pub secure: bool,
    pub change_on_failure: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CanaryRules {
    pub weight: u32,
    pub weight_total: u32,
    pub by_header: Option<http::HeaderName>,
    pub by_header_value: Option<String>,
    pub by_cookie: Option<String>,
}

/// The parsed annotations of one Ingress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub use_regex: bool,
    pub rewrite_target: Option<String>,
    pub ssl_redirect: bool,
    pub force_ssl_redirect: bool,
    pub backend_protocol: BackendProtocol,
    pub balance: Balance,
    pub hash_by: Option<HashKey>,
    pub affinity: Option<Affinity>,
    /// `None`: no limit.
    pub body_limit: Option<u64>,
    pub allow: Option<Vec<IpNet>>,
    pub permanent_redirect: Option<(String, u16)>,
    pub temporal_redirect: Option<(String, u16)>,
    pub app_root: Option<String>,
    pub canary: Option<CanaryRules>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub send_timeout: Duration,
    pub next_upstream_tries: u32,
    /// `proxy-request-buffering` (default `on`): read the request body (up to
    /// `--request-buffer-size`) before an upstream connection is taken; `off` streams it.
    pub request_buffering: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            use_regex: false,
            rewrite_target: None,
            ssl_redirect: true,
            force_ssl_redirect: false,
            backend_protocol: BackendProtocol::Http,
            balance: Balance::RoundRobin,
            hash_by: None,
            affinity: None,
            // ingress-nginx's default `proxy-body-size`.
            body_limit: Some(1 << 20),
            allow: None,
            permanent_redirect: None,
            temporal_redirect: None,
            app_root: None,
            canary: None,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            next_upstream_tries: 3,
            request_buffering: true,
        }
    }
}

/// The outcome of parsing: the options, or the first bad value; plus the unsupported ones.
pub struct Parsed {
    pub options: Result<Options, Invalid>,
    pub unsupported: Vec<Invalid>,
}

/// nginx's size syntax: `8m`, `512k`, `1g`, plain bytes; `0` means unlimited.
pub fn parse_size(s: &str) -> Option<Option<u64>> {
    let s = s.trim();
    let (num, mult) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1u64 << 10),
        b'm' | b'M' => (&s[..s.len() - 1], 1 << 20),
        b'g' | b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num.parse().ok()?;
    Some(if n == 0 {
        None
    } else {
        Some(n.checked_mul(mult)?)
    })
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim() {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn parse_hash_key(s: &str) -> Option<HashKey> {
    let v = s.trim().strip_prefix('$')?;
    Some(match v {
        "request_uri" => HashKey::RequestUri,
        "uri" => HashKey::Uri,
        "remote_addr" | "binary_remote_addr" => HashKey::RemoteAddr,
        "host" | "http_host" => HashKey::Host,
        _ => {
            if let Some(h) = v.strip_prefix("http_") {
                HashKey::Header(http::HeaderName::from_bytes(h.replace('_', "-").as_bytes()).ok()?)
            } else if let Some(c) = v.strip_prefix("cookie_") {
                HashKey::Cookie(c.to_owned())
            } else if let Some(a) = v.strip_prefix("arg_") {
                HashKey::Arg(a.to_owned())
            } else {
                return None;
            }
        }
    })
}

fn parse_cidrs(s: &str) -> Option<Vec<IpNet>> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<IpNet>()
                .ok()
                .or_else(|| p.parse::<std::net::IpAddr>().ok().map(IpNet::from))
        })
        .collect()
}

/// Parse an Ingress's annotations.
pub fn parse(key: &ObjectKey, annotations: &BTreeMap<String, String>) -> Parsed {
    let mut unsupported = Vec::new();
    for k in annotations.keys() {
        if let Some(short) = k.strip_prefix(PREFIX)
            && !SUPPORTED.contains(&short)
        {
            unsupported.push(Invalid::new(
                "Ingress",
                key,
                format!("metadata.annotations[{k}]"),
                "not supported by Portico; ignored",
            ));
        }
    }
    Parsed {
        options: parse_options(key, annotations),
        unsupported,
    }
}

fn parse_options(key: &ObjectKey, a: &BTreeMap<String, String>) -> Result<Options, Invalid> {
    let get = |short: &str| a.get(&format!("{PREFIX}{short}")).map(String::as_str);
    let bad = |short: &str, msg: String| {
        Invalid::new(
            "Ingress",
            key,
            format!("metadata.annotations[{PREFIX}{short}]"),
            msg,
        )
    };
    let boolean = |short: &str, default: bool| -> Result<bool, Invalid> {
        match get(short) {
            None => Ok(default),
            Some(v) => {
                parse_bool(v).ok_or_else(|| bad(short, format!("{v:?} is not true or false")))
            }
        }
    };
    let seconds = |short: &str, default: u64| -> Result<Duration, Invalid> {
        match get(short) {
            None => Ok(Duration::from_secs(default)),
            Some(v) => match v.trim().trim_end_matches('s').parse::<u64>() {
                Ok(n) if n > 0 && n <= 86_400 => Ok(Duration::from_secs(n)),
                _ => Err(bad(
                    short,
                    format!("{v:?} is not a number of seconds (1-86400)"),
                )),
            },
        }
    };
    let number = |short: &str| -> Result<Option<u64>, Invalid> {
        match get(short) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map(Some)
                .map_err(|_| bad(short, format!("{v:?} is not a number"))),
        }
    };
    let mut o = Options {
        use_regex: boolean("use-regex", false)?,
        rewrite_target: get("rewrite-target").map(str::to_owned),
        ssl_redirect: boolean("ssl-redirect", true)?,
        force_ssl_redirect: boolean("force-ssl-redirect", false)?,
        connect_timeout: seconds("proxy-connect-timeout", 5)?,
        read_timeout: seconds("proxy-read-timeout", 60)?,
        send_timeout: seconds("proxy-send-timeout", 60)?,
        app_root: get("app-root").map(str::to_owned),
        ..Options::default()
    };
    if let Some(root) = &o.app_root
        && !root.starts_with('/')
    {
        return Err(bad(
            "app-root",
            format!("{root:?} must be a path starting with /"),
        ));
    }
    if let Some(v) = get("proxy-request-buffering") {
        o.request_buffering = match v.trim() {
            "on" => true,
            "off" => false,
            _ => {
                return Err(bad(
                    "proxy-request-buffering",
                    format!("{v:?} is not on or off"),
                ));
            }
        };
    }
    if let Some(n) = number("proxy-next-upstream-tries")? {
        o.next_upstream_tries = u32::try_from(n).unwrap_or(u32::MAX).max(1);
    }
    if let Some(v) = get("backend-protocol") {
        o.backend_protocol = match v.trim().to_ascii_uppercase().as_str() {
            "HTTP" => BackendProtocol::Http,
            "HTTPS" => BackendProtocol::Https,
            "GRPC" => BackendProtocol::Grpc,
            "GRPCS" => BackendProtocol::Grpcs,
            _ => {
                return Err(bad(
                    "backend-protocol",
                    format!("{v:?} is not supported: expected HTTP, HTTPS, GRPC or GRPCS"),
                ));
            }
        };
    }
    if let Some(v) = get("load-balance") {
        o.balance = match v.trim() {
            "round_robin" => Balance::RoundRobin,
            "ewma" => Balance::Ewma,
            _ => {
                return Err(bad(
                    "load-balance",
                    format!("{v:?} is not supported: expected round_robin or ewma"),
                ));
            }
        };
    }
    if let Some(v) = get("upstream-hash-by") {
        o.hash_by = Some(parse_hash_key(v).ok_or_else(|| {
            bad("upstream-hash-by", format!("{v:?} is not supported: expected $request_uri, $uri, $remote_addr, $host, $http_NAME, $cookie_NAME or $arg_NAME"))
        })?);
    }
    if let Some(v) = get("proxy-body-size") {
        o.body_limit = parse_size(v)
            .ok_or_else(|| bad("proxy-body-size", format!("{v:?} is not a size such as 8m")))?;
    }
    for short in ["whitelist-source-range", "allowlist-source-range"] {
        if let Some(v) = get(short) {
            let nets = parse_cidrs(v).ok_or_else(|| {
                bad(
                    short,
                    format!("{v:?} is not a comma-separated list of CIDRs"),
                )
            })?;
            o.allow.get_or_insert_with(Vec::new).extend(nets);
        }
    }
    let redirect =
        |short: &str, code_key: &str, default: u16| -> Result<Option<(String, u16)>, Invalid> {
            let Some(url) = get(short) else {
                return Ok(None);
            };
            if url.parse::<http::Uri>().is_err() || http::HeaderValue::from_str(url).is_err() {
                return Err(bad(short, format!("{url:?} is not a URL")));
            }
            let code = match number(code_key)? {
                None => default,
                Some(c @ 300..=308) => c as u16,
                Some(c) => {
                    return Err(bad(
                        code_key,
                        format!("{c} is not a redirect status (300-308)"),
                    ));
                }
            };
            Ok(Some((url.to_owned(), code)))
        };
    o.permanent_redirect = redirect("permanent-redirect", "permanent-redirect-code", 301)?;
    o.temporal_redirect = redirect("temporal-redirect", "temporal-redirect-code", 302)?;

    if let Some(v) = get("affinity") {
        if v.trim() != "cookie" {
            return Err(bad(
                "affinity",
                format!("{v:?} is not supported: expected cookie"),
            ));
        }
        let persistent = match get("affinity-mode").map(str::trim) {
            None | Some("balanced") => false,
            Some("persistent") => true,
            Some(m) => {
                return Err(bad(
                    "affinity-mode",
                    format!("{m:?}: expected balanced or persistent"),
                ));
            }
        };
        let name = get("session-cookie-name")
            .unwrap_or("INGRESSCOOKIE")
            .trim()
            .to_owned();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(bad(
                "session-cookie-name",
                format!("{name:?} is not a valid cookie name"),
            ));
        }
        let samesite = match get("session-cookie-samesite").map(str::trim) {
            None => None,
            Some("None") => Some(SameSite::None),
            Some("Lax") => Some(SameSite::Lax),
            Some("Strict") => Some(SameSite::Strict),
            Some(s) => {
                return Err(bad(
                    "session-cookie-samesite",
                    format!("{s:?}: expected None, Lax or Strict"),
                ));
            }
        };
        let attr = |short: &str| -> Result<Option<String>, Invalid> {
            match get(short) {
                None => Ok(None),
                Some(v)
                    if v.bytes()
                        .all(|b| b.is_ascii_graphic() && b != b';' && b != b',') =>
                {
                    Ok(Some(v.to_owned()))
                }
                Some(v) => Err(bad(
                    short,
                    format!("{v:?} may not contain spaces, ';' or ','"),
                )),
            }
        };
        o.affinity = Some(Affinity {
            name,
            persistent,
            path: attr("session-cookie-path")?,
            domain: attr("session-cookie-domain")?,
            max_age: number("session-cookie-max-age")?,
            expires: number("session-cookie-expires")?,
            samesite,
            conditional_samesite_none: boolean("session-cookie-conditional-samesite-none", false)?,
            secure: boolean("session-cookie-secure", false)?,
            change_on_failure: boolean("session-cookie-change-on-failure", false)?,
        });
    }

    if boolean("canary", false)? {
        let weight_total = number("canary-weight-total")?.unwrap_or(100);
        let weight = number("canary-weight")?.unwrap_or(0);
        // Counted in u32 per request: a larger total (truncated, it once became 0 and a
        // division by it panicked on every request) is refused by name.
        let weight_total = u32::try_from(weight_total)
            .ok()
            .filter(|t| *t > 0)
            .ok_or_else(|| {
                bad(
                    "canary-weight-total",
                    format!("{weight_total} is not within 1-{}", u32::MAX),
                )
            })?;
        let weight = u32::try_from(weight)
            .ok()
            .filter(|w| *w <= weight_total)
            .ok_or_else(|| {
                bad(
                    "canary-weight",
                    format!("{weight} is not within 0-{weight_total}"),
                )
            })?;
        let by_header = match get("canary-by-header") {
            None => None,
            Some(h) => Some(
                http::HeaderName::from_bytes(h.trim().as_bytes())
                    .map_err(|_| bad("canary-by-header", format!("{h:?} is not a header name")))?,
            ),
        };
        o.canary = Some(CanaryRules {
            weight,
            weight_total,
            by_header,
            by_header_value: get("canary-by-header-value").map(str::to_owned),
            by_cookie: get("canary-by-cookie").map(|c| c.trim().to_owned()),
        });
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_map(pairs: &[(&str, &str)]) -> Parsed {
        let map = pairs
            .iter()
            .map(|(k, v)| (format!("{PREFIX}{k}"), (*v).to_owned()))
            .collect();
        parse(&ObjectKey::new("default", "web"), &map)
    }

    #[test]
    fn defaults_match_ingress_nginx() {
        let o = parse_map(&[]).options.expect("valid");
        assert!(o.ssl_redirect);
        assert_eq!(o.body_limit, Some(1 << 20));
        assert_eq!(o.connect_timeout, Duration::from_secs(5));
        assert_eq!(o.read_timeout, Duration::from_secs(60));
    }

    #[test]
    fn request_buffering_is_on_unless_turned_off() {
        assert!(parse_map(&[]).options.expect("valid").request_buffering);
        let p = parse_map(&[("proxy-request-buffering", "off")]);
        assert!(p.unsupported.is_empty());
        assert!(!p.options.expect("valid").request_buffering);
        let e = parse_map(&[("proxy-request-buffering", "maybe")])
            .options
            .expect_err("invalid");
        assert_eq!(
            e.field,
            "metadata.annotations[nginx.ingress.kubernetes.io/proxy-request-buffering]"
        );
    }

    #[test]
    fn sizes_parse_like_nginx() {
        assert_eq!(parse_size("8m"), Some(Some(8 << 20)));
        assert_eq!(parse_size("512k"), Some(Some(512 << 10)));
        assert_eq!(parse_size("100"), Some(Some(100)));
        assert_eq!(parse_size("0"), Some(None));
        assert_eq!(parse_size("lots"), None);
    }

    #[test]
    fn a_bad_value_names_the_ingress_and_the_annotation() {
        let e = parse_map(&[("whitelist-source-range", "10.0.0.0/8, nonsense")])
            .options
            .expect_err("invalid");
        assert_eq!(
            e.field,
            "metadata.annotations[nginx.ingress.kubernetes.io/whitelist-source-range]"
        );
        assert!(e.to_string().contains("default/web"), "{e}");
    }

    #[test]
    fn unsupported_annotations_are_listed_once_each() {
        let p = parse_map(&[
            ("configuration-snippet", "x"),
            ("ssl-redirect", "false"),
            ("enable-cors", "true"),
        ]);
        let fields: Vec<_> = p.unsupported.iter().map(|i| i.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metadata.annotations[nginx.ingress.kubernetes.io/configuration-snippet]",
                "metadata.annotations[nginx.ingress.kubernetes.io/enable-cors]"
            ]
        );
        assert!(!p.options.expect("valid").ssl_redirect);
    }

    #[test]
    fn a_canary_total_beyond_u32_is_refused_by_name_not_truncated() {
        // 4294967296 truncated to u32 was 0, and every request divided by it.
        for total in ["4294967296", "0"] {
            let p = parse_map(&[
                ("canary", "true"),
                ("canary-weight", "0"),
                ("canary-weight-total", total),
            ]);
            let err = p.options.expect_err("refused");
            assert!(
                format!("{err:?}").contains("canary-weight-total"),
                "{err:?}"
            );
        }
    }

    #[test]
    fn affinity_and_canary_parse() {
        let o = parse_map(&[
            ("affinity", "cookie"),
            ("session-cookie-name", "route"),
            ("session-cookie-max-age", "60"),
            ("session-cookie-samesite", "None"),
            ("canary", "true"),
            ("canary-weight", "30"),
            ("canary-by-header", "X-Canary"),
            ("upstream-hash-by", "$http_x_user"),
        ])
        .options
        .expect("valid");
        let a = o.affinity.expect("affinity");
        assert_eq!(
            (a.name.as_str(), a.max_age, a.samesite),
            ("route", Some(60), Some(SameSite::None))
        );
        let c = o.canary.expect("canary");
        assert_eq!((c.weight, c.weight_total), (30, 100));
        assert_eq!(c.by_header.expect("header").as_str(), "x-canary");
        assert_eq!(
            o.hash_by,
            Some(HashKey::Header(http::HeaderName::from_static("x-user")))
        );
    }
}
