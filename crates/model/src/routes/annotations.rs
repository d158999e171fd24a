//! The ingress-nginx annotations Portico honours, parsed into a route's policy, filters, backend
//! protocol and canary rules. A value that does not parse is an error on its Ingress (the
//! Ingress is not served, so a broken allow-list never turns into "allow everyone"); an
//! annotation Portico does not implement is reported once and otherwise ignored.

#![allow(clippy::result_large_err)] // `Invalid` is the model's report type, built once per bad value.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::invalid::{Invalid, InvalidReason};
use crate::key::ObjectKey;

use super::backend::{BackendProtocol, CanaryRules};
use super::filters::{Filters, HttpsRedirect, Redirect, UrlRewrite};
use super::matches::HeaderName;
use super::policy::{Balance, CookieAffinity, Policy, SameSite};

pub use values::parse_size;
use values::{parse_bool, parse_cidrs, parse_hash_key};

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

/// The parsed annotations of one Ingress.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Options {
    /// `use-regex`: paths are regexes.
    pub use_regex: bool,
    pub policy: Policy,
    pub filters: Filters,
    pub protocol: BackendProtocol,
    /// `canary: "true"`: the Ingress is a canary of the main routes with its hosts and paths.
    pub canary: Option<CanaryRules>,
}

impl Options {
    /// Whether the Ingress's Prefix and ImplementationSpecific paths are regexes: with
    /// `use-regex`, and with `rewrite-target` (as ingress-nginx does).
    pub fn regex_paths(&self) -> bool {
        self.use_regex || self.filters.rewrite.is_some()
    }
}

/// The outcome of parsing: the options, or the first bad value; plus the unsupported ones.
pub struct Parsed {
    pub options: Result<Options, Invalid>,
    pub unsupported: Vec<Invalid>,
}

/// Parse an Ingress's annotations.
pub fn parse(key: &ObjectKey, annotations: &BTreeMap<String, String>) -> Parsed {
    let mut unsupported = Vec::new();
    for k in annotations.keys() {
        if let Some(short) = k.strip_prefix(PREFIX)
            && !SUPPORTED.contains(&short)
        {
            unsupported.push(Invalid::because(
                InvalidReason::UnsupportedAnnotation,
                "Ingress",
                key,
                format!("metadata.annotations[{k}]"),
                "not supported by Portico; ignored",
            ));
        }
    }
    let r = Reader {
        key,
        map: annotations,
    };
    Parsed {
        options: r.options(),
        unsupported,
    }
}

/// One Ingress's annotations, read by short name; every error names the annotation.
struct Reader<'a> {
    key: &'a ObjectKey,
    map: &'a BTreeMap<String, String>,
}

impl Reader<'_> {
    fn get(&self, short: &str) -> Option<&str> {
        self.map
            .get(&format!("{PREFIX}{short}"))
            .map(String::as_str)
    }

    fn bad(&self, short: &str, msg: String) -> Invalid {
        Invalid::because(
            InvalidReason::BadAnnotationValue,
            "Ingress",
            self.key,
            format!("metadata.annotations[{PREFIX}{short}]"),
            msg,
        )
    }

    fn boolean(&self, short: &str, default: bool) -> Result<bool, Invalid> {
        match self.get(short) {
            None => Ok(default),
            Some(v) => {
                parse_bool(v).ok_or_else(|| self.bad(short, format!("{v:?} is not true or false")))
            }
        }
    }

    fn seconds(&self, short: &str, default: u64) -> Result<Duration, Invalid> {
        match self.get(short) {
            None => Ok(Duration::from_secs(default)),
            Some(v) => match v.trim().trim_end_matches('s').parse::<u64>() {
                Ok(n) if n > 0 && n <= 86_400 => Ok(Duration::from_secs(n)),
                _ => Err(self.bad(short, format!("{v:?} is not a number of seconds (1-86400)"))),
            },
        }
    }

    fn number(&self, short: &str) -> Result<Option<u64>, Invalid> {
        match self.get(short) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .map(Some)
                .map_err(|_| self.bad(short, format!("{v:?} is not a number"))),
        }
    }

    /// One of a few words, by `table` (value as trimmed, or upper-cased when `upper`).
    fn choice<T: Copy>(
        &self,
        short: &str,
        table: &[(&str, T)],
        upper: bool,
        expected: &str,
    ) -> Result<Option<T>, Invalid> {
        let Some(v) = self.get(short) else {
            return Ok(None);
        };
        let word = if upper {
            v.trim().to_ascii_uppercase()
        } else {
            v.trim().to_owned()
        };
        match table.iter().find(|(w, _)| *w == word) {
            Some((_, t)) => Ok(Some(*t)),
            None => Err(self.bad(
                short,
                format!("{v:?} is not supported: expected {expected}"),
            )),
        }
    }

    /// Every annotation, in the order ingress-nginx's users meet their errors: the first bad
    /// value is the one reported.
    fn options(&self) -> Result<Options, Invalid> {
        let use_regex = self.boolean("use-regex", false)?;
        let rewrite = self.get("rewrite-target").map(|t| UrlRewrite {
            target: t.to_owned(),
        });
        let ssl_redirect = self.boolean("ssl-redirect", true)?;
        let force_ssl_redirect = self.boolean("force-ssl-redirect", false)?;
        let mut policy = Policy::default();
        policy.timeouts.connect = self.seconds("proxy-connect-timeout", 5)?;
        policy.timeouts.read = self.seconds("proxy-read-timeout", 60)?;
        policy.timeouts.send = self.seconds("proxy-send-timeout", 60)?;
        let app_root = self.get("app-root").map(str::to_owned);
        if let Some(root) = &app_root
            && !root.starts_with('/')
        {
            return Err(self.bad(
                "app-root",
                format!("{root:?} must be a path starting with /"),
            ));
        }
        let protocol = self.upstream(&mut policy)?;
        let redirect = match self.redirect("permanent-redirect", "permanent-redirect-code", 301)? {
            Some(r) => {
                // Checked even when the permanent one wins.
                self.redirect("temporal-redirect", "temporal-redirect-code", 302)?;
                Some(r)
            }
            None => self.redirect("temporal-redirect", "temporal-redirect-code", 302)?,
        };
        policy.affinity = self.affinity()?;
        let canary = self.canary()?;
        let https_redirect = match (force_ssl_redirect, ssl_redirect) {
            (true, _) => HttpsRedirect::Always,
            (false, true) => HttpsRedirect::WhenTlsHost,
            (false, false) => HttpsRedirect::Never,
        };
        Ok(Options {
            use_regex,
            policy,
            filters: Filters {
                redirect,
                https_redirect,
                app_root,
                rewrite,
            },
            protocol,
            canary,
        })
    }

    /// Buffering, tries, protocol, balance, hashing, body size and allow-list.
    fn upstream(&self, policy: &mut Policy) -> Result<BackendProtocol, Invalid> {
        if let Some(v) = self.get("proxy-request-buffering") {
            policy.request_buffering = match v.trim() {
                "on" => true,
                "off" => false,
                _ => {
                    return Err(
                        self.bad("proxy-request-buffering", format!("{v:?} is not on or off"))
                    );
                }
            };
        }
        if let Some(n) = self.number("proxy-next-upstream-tries")? {
            policy.tries = u32::try_from(n).unwrap_or(u32::MAX).max(1);
        }
        let protocols = [
            ("HTTP", BackendProtocol::Http),
            ("HTTPS", BackendProtocol::Https),
            ("GRPC", BackendProtocol::Grpc),
            ("GRPCS", BackendProtocol::Grpcs),
        ];
        let protocol = self
            .choice(
                "backend-protocol",
                &protocols,
                true,
                "HTTP, HTTPS, GRPC or GRPCS",
            )?
            .unwrap_or_default();
        let balances = [
            ("round_robin", Balance::RoundRobin),
            ("ewma", Balance::Ewma),
        ];
        if let Some(b) = self.choice("load-balance", &balances, false, "round_robin or ewma")? {
            policy.balance = b;
        }
        if let Some(v) = self.get("upstream-hash-by") {
            policy.hash_by = Some(parse_hash_key(v).ok_or_else(|| {
                self.bad("upstream-hash-by", format!("{v:?} is not supported: expected $request_uri, $uri, $remote_addr, $host, $http_NAME, $cookie_NAME or $arg_NAME"))
            })?);
        }
        if let Some(v) = self.get("proxy-body-size") {
            policy.body_limit = parse_size(v).ok_or_else(|| {
                self.bad("proxy-body-size", format!("{v:?} is not a size such as 8m"))
            })?;
        }
        for short in ["whitelist-source-range", "allowlist-source-range"] {
            if let Some(v) = self.get(short) {
                let nets = parse_cidrs(v).ok_or_else(|| {
                    self.bad(
                        short,
                        format!("{v:?} is not a comma-separated list of CIDRs"),
                    )
                })?;
                policy.allow.get_or_insert_with(Vec::new).extend(nets);
            }
        }
        Ok(protocol)
    }

    fn redirect(
        &self,
        short: &str,
        code_key: &str,
        default: u16,
    ) -> Result<Option<Redirect>, Invalid> {
        let Some(url) = self.get(short) else {
            return Ok(None);
        };
        if url.parse::<http::Uri>().is_err() || http::HeaderValue::from_str(url).is_err() {
            return Err(self.bad(short, format!("{url:?} is not a URL")));
        }
        let status = match self.number(code_key)? {
            None => default,
            Some(c @ 300..=308) => c as u16,
            Some(c) => {
                return Err(self.bad(code_key, format!("{c} is not a redirect status (300-308)")));
            }
        };
        Ok(Some(Redirect {
            location: url.to_owned(),
            status,
        }))
    }

    fn cookie_attr(&self, short: &str) -> Result<Option<String>, Invalid> {
        match self.get(short) {
            None => Ok(None),
            Some(v)
                if v.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b';' && b != b',') =>
            {
                Ok(Some(v.to_owned()))
            }
            Some(v) => Err(self.bad(short, format!("{v:?} may not contain spaces, ';' or ','"))),
        }
    }

    fn affinity(&self) -> Result<Option<CookieAffinity>, Invalid> {
        let Some(v) = self.get("affinity") else {
            return Ok(None);
        };
        if v.trim() != "cookie" {
            return Err(self.bad(
                "affinity",
                format!("{v:?} is not supported: expected cookie"),
            ));
        }
        let persistent = match self.get("affinity-mode").map(str::trim) {
            None | Some("balanced") => false,
            Some("persistent") => true,
            Some(m) => {
                return Err(self.bad(
                    "affinity-mode",
                    format!("{m:?}: expected balanced or persistent"),
                ));
            }
        };
        let name = self
            .get("session-cookie-name")
            .unwrap_or("INGRESSCOOKIE")
            .trim()
            .to_owned();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(self.bad(
                "session-cookie-name",
                format!("{name:?} is not a valid cookie name"),
            ));
        }
        let samesite = match self.get("session-cookie-samesite").map(str::trim) {
            None => None,
            Some("None") => Some(SameSite::None),
            Some("Lax") => Some(SameSite::Lax),
            Some("Strict") => Some(SameSite::Strict),
            Some(s) => {
                return Err(self.bad(
                    "session-cookie-samesite",
                    format!("{s:?}: expected None, Lax or Strict"),
                ));
            }
        };
        Ok(Some(CookieAffinity {
            name,
            persistent,
            path: self.cookie_attr("session-cookie-path")?,
            domain: self.cookie_attr("session-cookie-domain")?,
            max_age: self.number("session-cookie-max-age")?,
            expires: self.number("session-cookie-expires")?,
            samesite,
            conditional_samesite_none: self
                .boolean("session-cookie-conditional-samesite-none", false)?,
            secure: self.boolean("session-cookie-secure", false)?,
            change_on_failure: self.boolean("session-cookie-change-on-failure", false)?,
        }))
    }

    fn canary(&self) -> Result<Option<CanaryRules>, Invalid> {
        if !self.boolean("canary", false)? {
            return Ok(None);
        }
        let weight_total = self.number("canary-weight-total")?.unwrap_or(100);
        let weight = self.number("canary-weight")?.unwrap_or(0);
        // Counted in u32 per request: a larger total (truncated, it once became 0 and a
        // division by it panicked on every request) is refused by name.
        let weight_total = u32::try_from(weight_total)
            .ok()
            .filter(|t| *t > 0)
            .ok_or_else(|| {
                self.bad(
                    "canary-weight-total",
                    format!("{weight_total} is not within 1-{}", u32::MAX),
                )
            })?;
        let weight = u32::try_from(weight)
            .ok()
            .filter(|w| *w <= weight_total)
            .ok_or_else(|| {
                self.bad(
                    "canary-weight",
                    format!("{weight} is not within 0-{weight_total}"),
                )
            })?;
        let by_header = match self.get("canary-by-header") {
            None => None,
            Some(h) => Some(HeaderName::parse(h.trim()).ok_or_else(|| {
                self.bad("canary-by-header", format!("{h:?} is not a header name"))
            })?),
        };
        Ok(Some(CanaryRules {
            weight,
            weight_total,
            by_header,
            by_header_value: self.get("canary-by-header-value").map(str::to_owned),
            by_cookie: self.get("canary-by-cookie").map(|c| c.trim().to_owned()),
        }))
    }
}

#[cfg(test)]
mod tests;
mod values;
