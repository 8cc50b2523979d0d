//! Keeping credentials out of messages: the values of credential variables
//! in the environment, secrets given in settings, and `user:password@` in
//! URLs.

/// Words that mark a variable or setting name as naming a credential.
const SECRET_WORDS: [&str; 6] = ["SECRET", "TOKEN", "KEY", "PASSWORD", "SAS", "CREDENTIAL"];

/// Whether a setting key names a credential, by its name.
pub(crate) fn is_secret_key(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|w| n.contains(w))
}

/// Whether an environment variable holds a credential, by its name.
pub(crate) fn is_secret_var(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    let ours = ["AWS_", "AZURE_", "GOOGLE_", "GCS_", "LIFEBOAT_"]
        .iter()
        .any(|p| n.starts_with(p));
    ours && is_secret_key(&n) && !n.ends_with("_FILE") && !n.ends_with("_COMMAND")
}

/// `s` with the value of every credential variable in the environment, and
/// every string in `extra`, replaced by `<redacted>`, and user:password
/// parts of URLs removed.
pub(crate) fn redact_with(s: &str, extra: &[String]) -> String {
    let mut out = strip_userinfo(s);
    let env = std::env::vars_os().filter_map(|(k, v)| {
        let (k, v) = (k.to_str()?, v.to_str()?);
        is_secret_var(k).then(|| v.trim().to_string())
    });
    for v in env.chain(extra.iter().cloned()) {
        if v.len() >= 4 && out.contains(&v) {
            out = out.replace(&v, "<redacted>");
        }
    }
    out
}

/// Remove `user:password@` from every `scheme://user:password@host` in `s`.
pub(crate) fn strip_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace())
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("<redacted>@");
                rest = &tail[at + 1..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// The whole text of an error and its causes, `: `-separated, each cause
/// left out when the text before already holds it.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// An error's cause in the words it would have printed, with credentials
/// taken out: what an error carries instead of its cause when the cause's
/// text (or debug form) would show a secret.
#[derive(Debug)]
pub struct RedactedCause {
    text: String,
}

impl std::fmt::Display for RedactedCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for RedactedCause {}

/// `e` as an error's cause: itself, or its redacted text when its text or
/// debug form shows a credential (environment variables, `secrets`, or the
/// user:password of a URL).
pub(crate) fn cause<E>(e: E, secrets: &[String]) -> crate::Cause
where
    E: std::error::Error + Send + Sync + 'static,
{
    let text = error_chain(&e);
    let debug = format!("{e:?}");
    let clean = redact_with(&text, secrets);
    if clean == text && redact_with(&debug, secrets) == debug {
        Box::new(e)
    } else {
        Box::new(RedactedCause { text: clean })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_stripped() {
        assert_eq!(
            strip_userinfo("see http://ak:sk@h:1/b and s3://x/y"),
            "see http://<redacted>@h:1/b and s3://x/y"
        );
        assert_eq!(strip_userinfo("no url"), "no url");
        assert_eq!(strip_userinfo("http://h/p@q"), "http://h/p@q");
    }

    #[test]
    fn secret_variables_are_recognised() {
        for v in [
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ACCESS_KEY_ID",
            "AWS_SESSION_TOKEN",
            "AZURE_STORAGE_ACCOUNT_KEY",
            "GOOGLE_SERVICE_ACCOUNT_KEY",
            "LIFEBOAT_PASSWORD",
        ] {
            assert!(is_secret_var(v), "{v}");
        }
        for v in [
            "AWS_REGION",
            "AWS_ENDPOINT_URL",
            "LIFEBOAT_PASSWORD_FILE",
            "HOME",
        ] {
            assert!(!is_secret_var(v), "{v}");
        }
    }

    #[test]
    fn a_cause_showing_a_secret_is_kept_only_as_redacted_text() {
        let secrets = vec!["hunter2-very-secret".to_string()];
        let plain = cause(std::io::Error::other("connection reset"), &secrets);
        assert!(plain.downcast_ref::<std::io::Error>().is_some());
        let leaky = cause(
            std::io::Error::other("bad token hunter2-very-secret at http://u:p@h/x"),
            &secrets,
        );
        assert!(leaky.downcast_ref::<std::io::Error>().is_none());
        let shown = format!("{leaky} {leaky:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("u:p@"),
            "{shown}"
        );
        assert!(shown.contains("bad token <redacted>"), "{shown}");
    }
}
