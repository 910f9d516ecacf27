//! The `/device` page's HTML: the templates beside this file, a tiny `{{name}}` renderer
//! in which every value is escaped unless it is already `Html`, and one function per
//! screen. No JavaScript, no external asset: the only other resource is `style.css`.

use latchkey_actors::device::DeviceView;
use latchkey_domain::challenge::NAMESPACE;
use latchkey_domain::{KeyAlgorithm, Scope};

const LAYOUT: &str = include_str!("layout.html");
const SIGNIN_KEY: &str = include_str!("signin_key.html");
const SIGNIN_SIGNATURE: &str = include_str!("signin_signature.html");
const REQUEST: &str = include_str!("request.html");
const COMPARE_KEY: &str = include_str!("compare_key.html");
const COMPARE_CODE: &str = include_str!("compare_code.html");
const ENTER_CODE: &str = include_str!("enter_code.html");
const MESSAGE: &str = include_str!("message.html");
const WHOAMI: &str = include_str!("whoami.html");
/// The page's one stylesheet.
pub const STYLE: &str = include_str!("style.css");

/// A fragment of HTML that is safe to insert as is.
#[derive(Debug, Clone, Default)]
pub struct Html(String);

impl Html {
    /// Text, escaped.
    pub fn text(s: &str) -> Self {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&#39;"),
                c => out.push(c),
            }
        }
        Html(out)
    }

    /// The markup.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// Fills `{{name}}` slots of a template; a slot without a value stays empty.
fn render(template: &str, values: &[(&str, Html)]) -> Html {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let name = &after[..end];
        if let Some((_, v)) = values.iter().find(|(k, _)| *k == name) {
            out.push_str(&v.0);
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Html(out)
}

fn t(s: &str) -> Html {
    Html::text(s)
}

/// The whole page around a screen; `who` is the signed-in handle and the CSRF token.
pub fn page(title: &str, who: Option<(&str, &str)>, body: Html) -> String {
    let whoami = match who {
        Some((handle, csrf)) => render(WHOAMI, &[("handle", t(handle)), ("csrf", t(csrf))]),
        None => Html::default(),
    };
    render(
        LAYOUT,
        &[("title", t(title)), ("whoami", whoami), ("body", body)],
    )
    .into_string()
}

/// Sign-in, step 1: the public key.
pub fn signin_key(csrf: &str, user_code: &str) -> Html {
    let intro = if user_code.is_empty() {
        render("<p>Prove who you are with your SSH key.</p>", &[])
    } else {
        render(
            "<p>To approve the device showing <strong class=\"code\">{{code}}</strong>, first prove who you are with your SSH key.</p>",
            &[("code", t(user_code))],
        )
    };
    render(
        SIGNIN_KEY,
        &[
            ("intro", intro),
            ("csrf", t(csrf)),
            ("user_code", t(user_code)),
        ],
    )
}

/// The default private key file for an algorithm, as `ssh-keygen` names it.
fn key_file(alg: KeyAlgorithm) -> &'static str {
    match alg {
        KeyAlgorithm::Ed25519 => "~/.ssh/id_ed25519",
        KeyAlgorithm::SkEd25519 => "~/.ssh/id_ed25519_sk",
        KeyAlgorithm::EcdsaP256 => "~/.ssh/id_ecdsa",
    }
}

/// The one-line command that signs `message`: `printf` writes its exact bytes (newlines
/// included) to `ssh-keygen -Y sign`, which signs standard input and prints the signature.
pub fn sign_command(message: &str, alg: KeyAlgorithm) -> String {
    let mut fmt = String::with_capacity(message.len() + 16);
    for c in message.chars() {
        match c {
            '\n' => fmt.push_str("\\n"),
            '\\' => fmt.push_str("\\\\"),
            '%' => fmt.push_str("%%"),
            '\'' => fmt.push_str("'\\''"),
            c => fmt.push(c),
        }
    }
    format!(
        "printf '{fmt}' | ssh-keygen -Y sign -n {NAMESPACE} -f {}",
        key_file(alg)
    )
}

/// What sign-in step 2 shows.
pub struct Challenge<'a> {
    /// The challenge id.
    pub id: &'a str,
    /// The exact message.
    pub message: &'a str,
    /// The key's algorithm (picks the default key file).
    pub algorithm: KeyAlgorithm,
    /// RFC 3339.
    pub expires_at: &'a str,
}

/// Sign-in, step 2: the challenge, the command, the signature box.
pub fn signin_signature(csrf: &str, user_code: &str, c: &Challenge<'_>) -> Html {
    render(
        SIGNIN_SIGNATURE,
        &[
            ("command", t(&sign_command(c.message, c.algorithm))),
            ("message", t(c.message)),
            ("expires_at", t(c.expires_at)),
            ("csrf", t(csrf)),
            ("user_code", t(user_code)),
            ("challenge_id", t(c.id)),
        ],
    )
}

fn scope_checkboxes(scopes: &[Scope]) -> Html {
    let mut out = String::new();
    for s in scopes {
        let (name, label) = match s {
            Scope::ChatRead => ("scope_chat_read", "chat:read: read history and live events"),
            Scope::ChatWrite => (
                "scope_chat_write",
                "chat:write: post, create, join and leave rooms",
            ),
            Scope::Admin => continue,
        };
        out.push_str(
            &render(
                "<label><input type=\"checkbox\" name=\"{{name}}\" id=\"{{name}}\" value=\"on\" checked>{{label}}</label>\n",
                &[("name", t(name)), ("label", t(label))],
            )
            .0,
        );
    }
    Html(out)
}

/// The request and Approve / Deny.
pub fn request(csrf: &str, user_code: &str, view: &DeviceView, requested_at: &str) -> Html {
    let r = &view.state.request;
    let compare = match (&r.key, &view.comparison_code) {
        (Some(k), Some(code)) => render(
            COMPARE_KEY,
            &[
                ("comparison_code", t(code)),
                ("fingerprint", t(&k.key.fingerprint)),
                (
                    "proven",
                    t(if view.state.key_proven {
                        "the device has proven it holds this key"
                    } else {
                        "not proven yet: approving waits until the device proves it holds the key"
                    }),
                ),
            ],
        ),
        _ => render(COMPARE_CODE, &[("user_code", t(user_code))]),
    };
    let none = "(not given)";
    render(
        REQUEST,
        &[
            ("client_id", t(&r.client_id)),
            ("device_name", t(r.device_name.as_deref().unwrap_or(none))),
            (
                "ip",
                t(&r.ip
                    .map_or_else(|| "(not kept)".into(), |ip| ip.to_string())),
            ),
            ("user_agent", t(r.user_agent.as_deref().unwrap_or(none))),
            ("requested_at", t(requested_at)),
            ("user_code", t(user_code)),
            ("compare", compare),
            ("scopes", scope_checkboxes(&r.scopes)),
            ("csrf", t(csrf)),
        ],
    )
}

/// The form to type a user code.
pub fn enter_code() -> Html {
    render(ENTER_CODE, &[])
}

/// An outcome or an error, in words.
pub fn message(heading: &str, text: &str) -> Html {
    render(MESSAGE, &[("heading", t(heading)), ("text", t(text))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_html_is_not() {
        let html = render(
            "<p>{{a}}</p>{{b}}{{missing}}",
            &[("a", t("<script>&\"'")), ("b", Html("<b>ok</b>".into()))],
        );
        assert_eq!(
            html.into_string(),
            "<p>&lt;script&gt;&amp;&quot;&#39;</p><b>ok</b>"
        );
    }

    #[test]
    fn the_sign_command_prints_the_exact_message() {
        let cmd = sign_command("a\nb%c\n", KeyAlgorithm::Ed25519);
        assert_eq!(
            cmd,
            "printf 'a\\nb%%c\\n' | ssh-keygen -Y sign -n latchkey-auth -f ~/.ssh/id_ed25519"
        );
        assert!(!cmd.contains('\n'), "one line");
    }

    #[test]
    fn no_template_loads_anything_from_elsewhere_or_runs_script() {
        for tpl in [
            LAYOUT,
            SIGNIN_KEY,
            SIGNIN_SIGNATURE,
            REQUEST,
            COMPARE_KEY,
            COMPARE_CODE,
            ENTER_CODE,
            MESSAGE,
            WHOAMI,
            STYLE,
        ] {
            assert!(!tpl.contains("<script"), "no script");
            assert!(!tpl.contains("http://") && !tpl.contains("https://"));
            assert!(!tpl.contains("@import") && !tpl.contains("url("));
        }
    }
}
