//! Storage URIs taken apart: `scheme://[user[:password]@]host[:port]/seg/seg?KEY=value&…`.

use strata_core::{redact_uri, Error, Result, REDACTED};

use super::object::secrets_of;
use strata_core::{percent_decode, percent_decode_query};

/// The query parameter of a locality-aware backup's URIs. Every scheme accepts it; storage
/// ignores it (the backup reads it, see `strata_core::open_locations`).
pub(crate) const LOCALITY_PARAM: &str = "COCKROACH_LOCALITY";

/// The parts of a storage URI, percent-decoded.
pub(crate) struct StorageUri<'a> {
    pub(crate) raw: &'a str,
    /// Lower-cased.
    pub(crate) scheme: String,
    /// The host, without user info or port.
    pub(crate) host: &'a str,
    /// `Some` when the authority names a port.
    pub(crate) port: Option<u16>,
    /// `user[:password]` when the authority has user info (only http(s) URIs accept it).
    pub(crate) userinfo: Option<&'a str>,
    /// Non-empty, decoded, never `.` or `..`.
    pub(crate) segments: Vec<String>,
    /// Decoded names (as written) and decoded values, in order.
    params: Vec<(String, String)>,
}

impl<'a> StorageUri<'a> {
    /// Parses `raw`. Schemes not in `schemes` are [`Error::NotSupported`]; user info is allowed
    /// only for schemes in `with_userinfo`, ports only for those in `with_port`.
    pub(crate) fn parse(
        raw: &'a str,
        schemes: &[&str],
        with_userinfo: &[&str],
        with_port: &[&str],
    ) -> Result<StorageUri<'a>> {
        let fail = |message: String| Err(invalid_uri(raw, &message));
        if let Some(c) = raw.chars().find(|c| c.is_control() || c.is_whitespace()) {
            return fail(format!("it contains the character {c:?}; percent-encode it"));
        }
        const EXAMPLE: &str = "expected a URI such as nodelocal://1/backups or file:///var/backups";
        let Some((scheme, rest)) = raw.split_once("://") else {
            return match raw.split_once(':') {
                Some((scheme, _)) if !scheme.contains('/') => {
                    fail(format!("\"{scheme}:\" is not followed by \"//\": {EXAMPLE}"))
                }
                _ => fail(format!("it has no scheme: {EXAMPLE}")),
            };
        };
        let valid_scheme = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if !valid_scheme {
            return fail(format!("{scheme:?} is not a URI scheme"));
        }
        let scheme = scheme.to_ascii_lowercase();
        if !schemes.contains(&scheme.as_str()) {
            return Err(Error::NotSupported { feature: format!("{scheme} storage") });
        }
        if rest.contains('#') {
            return fail("'#' starts a fragment, which storage URIs do not have; percent-encode it as %23".into());
        }
        let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = before_query.split_once('/').unwrap_or((before_query, ""));
        if !authority.contains('@') && authority.contains(':') && path.contains('@') {
            // `user:pa/ss@host`: the '/' cut the user info short; say so without echoing it.
            return fail("the user or password holds an unencoded '/': percent-encode it as %2F".into());
        }
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some(_) if !with_userinfo.contains(&scheme.as_str()) => {
                return fail(format!("{scheme} URIs take no user or password"));
            }
            Some((userinfo, host_port)) => (Some(userinfo), host_port),
            None => (None, authority),
        };
        // An IPv6 literal is bracketed: `[::1]:8080`.
        let port_sep = match host_port.rfind(']') {
            Some(close) => host_port[close..].find(':').map(|i| close + i),
            None => host_port.rfind(':'),
        };
        let (host, port) = match port_sep.map(|i| (&host_port[..i], &host_port[i + 1..])) {
            Some(_) if !with_port.contains(&scheme.as_str()) => return fail(format!("{scheme} URIs take no port")),
            Some((host, port)) => match port.parse::<u16>() {
                Ok(port) => (host, Some(port)),
                Err(_) => return fail(format!("the port {port:?} is not a number from 0 to 65535")),
            },
            None => (host_port, None),
        };
        let mut segments = Vec::new();
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            let decoded = match percent_decode("path segment", segment) {
                Ok(decoded) => decoded,
                Err(_) => return fail(format!("the path segment {segment:?} does not decode to UTF-8 text")),
            };
            if decoded == "." || decoded == ".." {
                return fail(format!("the path may not contain {decoded:?} segments"));
            }
            if decoded.contains('/') || decoded.chars().any(|c| c.is_control()) {
                return fail(format!("the path segment {segment:?} decodes to '/' or a control character"));
            }
            segments.push(decoded);
        }
        let mut params: Vec<(String, String)> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            // Never the value in an error: it may be a secret.
            let Ok(name) = percent_decode_query("URI parameter name", name) else {
                return fail("a parameter name does not decode to UTF-8 text".into());
            };
            let Ok(value) = percent_decode_query("URI parameter", value) else {
                return fail(format!("the value of {name} does not decode to UTF-8 text"));
            };
            if params.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                return fail(format!("the parameter {name} is given twice"));
            }
            params.push((name, value));
        }
        Ok(StorageUri { raw, scheme, host, port, userinfo, segments, params })
    }

    /// Rejects query parameters other than `known` and [`LOCALITY_PARAM`] (names compare
    /// case-insensitively), naming the first unknown one and the ones the scheme takes.
    pub(crate) fn check_params(&self, known: &[&str]) -> Result<()> {
        let is_known =
            |p: &str| p.eq_ignore_ascii_case(LOCALITY_PARAM) || known.iter().any(|k| k.eq_ignore_ascii_case(p));
        match self.params.iter().find(|(p, _)| !is_known(p)) {
            Some((unknown, value)) => {
                let mut takes: Vec<&str> = known.to_vec();
                takes.push(LOCALITY_PARAM);
                // A name that is no name, or comes without a value, may be a value whose `=` went
                // missing or was encoded.
                let name_like = !unknown.is_empty()
                    && !value.is_empty()
                    && unknown.len() <= 64
                    && unknown.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
                let unknown = if name_like {
                    format!("{unknown:?}")
                } else {
                    "(a name that is no name, or without a value)".into()
                };
                Err(self.invalid(&format!(
                    "unknown parameter {unknown} for {} storage (it takes {})",
                    self.scheme,
                    takes.join(", ")
                )))
            }
            None => Ok(()),
        }
    }

    /// The decoded value of parameter `name`; an empty value counts as absent.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// The value of a required parameter, or an error naming it and saying why it is needed.
    pub(crate) fn require(&self, name: &str, why: &str) -> Result<&str> {
        self.param(name).ok_or_else(|| self.invalid(&format!("missing parameter {name} ({why})")))
    }

    /// Rejects parameter `name` if it is given, saying why.
    pub(crate) fn forbid(&self, name: &str, why: &str) -> Result<()> {
        match self.param(name) {
            Some(_) => Err(self.invalid(&format!("the parameter {name} {why}"))),
            None => Ok(()),
        }
    }

    /// The value of a boolean parameter (`true`/`false`), if given.
    pub(crate) fn bool_param(&self, name: &str) -> Result<Option<bool>> {
        match self.param(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            // The value is not shown: it may be a secret typed into the wrong parameter.
            Some(_) => Err(self.invalid(&format!("the parameter {name} is true or false"))),
        }
    }

    /// `AUTH`: `specified` (the default: credentials are in the URI) or `implicit` (the
    /// environment's credentials).
    pub(crate) fn auth(&self) -> Result<Auth> {
        match self.param("AUTH") {
            None => Ok(Auth::Specified),
            Some(v) if v.eq_ignore_ascii_case("specified") => Ok(Auth::Specified),
            Some(v) if v.eq_ignore_ascii_case("implicit") => Ok(Auth::Implicit),
            Some(_) => Err(self.invalid("the parameter AUTH is 'specified' or 'implicit'")),
        }
    }

    /// The path, `/`-joined (no leading or trailing `/`).
    pub(crate) fn path(&self) -> String {
        self.segments.join("/")
    }

    pub(crate) fn invalid(&self, message: &str) -> Error {
        invalid_uri(self.raw, message)
    }
}

/// How a cloud URI authenticates (its `AUTH` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Auth {
    /// Credentials are parameters of the URI.
    Specified,
    /// Credentials come from the environment (variables, metadata services, files).
    Implicit,
}

/// `invalid storage URI: '<redacted uri>': <message>`, with every secret of the URI scrubbed,
/// also those [`redact_uri`] misses (a percent-encoded parameter name).
pub(crate) fn invalid_uri(raw: &str, message: &str) -> Error {
    let before_query = raw.split('?').next().unwrap_or_default();
    let shown = match before_query.rfind('@') {
        // Without `://`, user info cannot be told from the rest: hide everything before the '@'.
        Some(at) if !before_query.contains("://") => redact_uri(&format!("{REDACTED}@{}", &raw[at + 1..])),
        _ => redact_uri(raw),
    };
    let mut message = format!("'{shown}': {message}");
    for secret in secrets_of(raw) {
        message = message.replace(&secret, REDACTED);
    }
    Error::InvalidArgument { what: "storage URI".into(), message }
}
