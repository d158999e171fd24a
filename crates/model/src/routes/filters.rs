//! What a route does to a request before (or instead of) proxying it: redirects and rewrites.

/// A fixed redirect (`permanent-redirect`, `temporal-redirect`): every request of the route is
/// answered with `status` and `Location: location`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Redirect {
    /// An absolute or relative URL, valid as a URI and as a header value.
    pub location: String,
    /// 300-308.
    pub status: u16,
}

/// When a plain-HTTP request is redirected to HTTPS (308 to `https://host[:port]` + the path
/// and query).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum HttpsRedirect {
    /// `ssl-redirect: "false"` and no `force-ssl-redirect`.
    Never,
    /// `ssl-redirect` (on by default): when the route's host has TLS ([`super::Route::tls_host`]).
    #[default]
    WhenTlsHost,
    /// `force-ssl-redirect`: always.
    Always,
}

/// `rewrite-target`: the path sent upstream. On a regex route, nginx's `$1`..`$n` name the
/// path's capture groups; on any other route the target replaces the path as written. The
/// query is kept.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UrlRewrite {
    /// As written (`/$2`).
    pub target: String,
}

impl UrlRewrite {
    /// The target in the `regex` crate's expansion syntax: `$1` -> `${1}`, so that a group
    /// number followed by letters (`$1abc`) reads as nginx reads it.
    pub fn expansion(&self) -> String {
        let t = &self.target;
        let mut out = String::with_capacity(t.len() + 4);
        let b = t.as_bytes();
        let mut i = 0;
        let mut copied = 0;
        while i < b.len() {
            if b[i] == b'$' && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                let mut j = i + 1;
                while b.get(j).is_some_and(u8::is_ascii_digit) {
                    j += 1;
                }
                out.push_str(&t[copied..i]);
                out.push_str("${");
                out.push_str(&t[i + 1..j]);
                out.push('}');
                i = j;
                copied = j;
            } else {
                i += 1;
            }
        }
        out.push_str(&t[copied..]);
        out
    }
}

/// A route's filters, applied in this order by the data plane after the policy's allow-list:
/// `redirect`, then `https_redirect`, then `app_root`; a request none of them answers is
/// proxied with `rewrite` applied. Routes of Ingresses annotated alike share one (`Arc`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Filters {
    /// `permanent-redirect` (default 301), else `temporal-redirect` (default 302): the first one
    /// set wins, as ingress-nginx evaluates them.
    pub redirect: Option<Redirect>,
    pub https_redirect: HttpsRedirect,
    /// `app-root`: requests for exactly `/` get a 302 to this path.
    pub app_root: Option<String>,
    pub rewrite: Option<UrlRewrite>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_groups_become_regex_groups() {
        let e = |t: &str| {
            UrlRewrite {
                target: t.to_owned(),
            }
            .expansion()
        };
        assert_eq!(e("/$2"), "/${2}");
        assert_eq!(e("/v1/$1abc"), "/v1/${1}abc");
        assert_eq!(e("/plain"), "/plain");
        assert_eq!(e("/é/$12$"), "/é/${12}$");
    }
}
