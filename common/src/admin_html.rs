//! The small HTML page at `/` of a node's admin port (chunkservers, gateways): its role and id,
//! and links to the master status pages it knows. Plain HTML, no script, no external asset.

use crate::{AdminPage, AdminRoutes};

/// Escape `s` for HTML text and attribute values.
pub fn escape(s: &str) -> String {
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
    out
}

/// What a node's page shows.
#[derive(Clone, Debug, Default)]
pub struct NodePage {
    /// `chunkserver`, `gateway`, ...
    pub role: String,
    /// The node's id (or a description when it has none yet).
    pub id: String,
    /// Addresses the node serves (label, address), e.g. ("S3", "127.0.0.1:9000").
    pub serves: Vec<(String, String)>,
    /// Master gRPC addresses the node was given (`--masters`).
    pub master_grpc: Vec<String>,
    /// Master admin base URLs the node was given (`--master-admin`), linked.
    pub master_admin: Vec<String>,
}

/// A master admin address as a link target: `host:port` becomes `http://host:port/`; a URL is
/// kept. Anything else (a script URL, a quote) gives `None`.
pub fn admin_link(addr: &str) -> Option<String> {
    let a = addr.trim();
    if a.is_empty() || a.chars().any(|c| c.is_whitespace() || "\"'<>`".contains(c)) {
        return None;
    }
    if a.starts_with("http://") || a.starts_with("https://") {
        let mut u = a.to_string();
        if !u.ends_with('/') {
            u.push('/');
        }
        return Some(u);
    }
    if a.contains("://") {
        return None;
    }
    Some(format!("http://{a}/"))
}

impl NodePage {
    /// The page (pure).
    pub fn render(&self) -> String {
        let mut h = String::new();
        h.push_str("<!doctype html>\n<html><head><meta charset=\"utf-8\">");
        h.push_str(&format!(
            "<title>Anode {} {}</title>",
            escape(&self.role),
            escape(&self.id)
        ));
        h.push_str(
            "<style>body{font-family:sans-serif;margin:2em;color:#222}\
             td,th{padding:.2em .8em;text-align:left}code{background:#eee;padding:0 .3em}</style>",
        );
        h.push_str("</head><body>\n");
        h.push_str(&format!(
            "<h1>Anode <span id=\"role\">{}</span> <span id=\"node-id\">{}</span></h1>\n",
            escape(&self.role),
            escape(&self.id)
        ));
        if !self.serves.is_empty() {
            h.push_str("<table id=\"serves\">");
            for (label, addr) in &self.serves {
                h.push_str(&format!(
                    "<tr><th>{}</th><td><code>{}</code></td></tr>",
                    escape(label),
                    escape(addr)
                ));
            }
            h.push_str("</table>\n");
        }
        h.push_str("<p>This node: <a href=\"/metrics\">/metrics</a> · <a href=\"/health\">/health</a></p>\n");
        h.push_str("<h2>Masters</h2>\n");
        let links: Vec<String> = self
            .master_admin
            .iter()
            .filter_map(|a| admin_link(a))
            .collect();
        if links.is_empty() {
            h.push_str(
                "<p id=\"master-admin-unknown\">The admin addresses of the masters are not known \
                 to this node (start it with <code>--master-admin HOST:PORT,...</code> to link \
                 them here). The cluster status page is at <code>/</code> on a master's \
                 <code>--admin-listen</code> address.</p>\n",
            );
        } else {
            h.push_str("<ul id=\"master-admin\">");
            for l in &links {
                h.push_str(&format!(
                    "<li><a href=\"{0}\">{0}</a> (status page)</li>",
                    escape(l)
                ));
            }
            h.push_str("</ul>\n");
        }
        h.push_str(
            "<p>gRPC addresses this node uses (<code>--masters</code>):</p><ul id=\"master-grpc\">",
        );
        for m in &self.master_grpc {
            h.push_str(&format!("<li><code>{}</code></li>", escape(m)));
        }
        h.push_str("</ul>\n</body></html>\n");
        h
    }
}

impl AdminRoutes for NodePage {
    fn get(&self, path: &str) -> Option<AdminPage> {
        (path == "/").then(|| AdminPage::ok("text/html; charset=utf-8", self.render()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }

    #[test]
    fn admin_links_only_http() {
        assert_eq!(
            admin_link("10.0.0.1:7081").as_deref(),
            Some("http://10.0.0.1:7081/")
        );
        assert_eq!(
            admin_link("https://m1:7081").as_deref(),
            Some("https://m1:7081/")
        );
        assert_eq!(admin_link("javascript://alert(1)"), None);
        assert_eq!(admin_link("a\" onclick=\"x"), None);
        assert_eq!(admin_link(" "), None);
    }

    #[test]
    fn page_names_role_id_and_links_or_says_unknown() {
        let mut p = NodePage {
            role: "chunkserver".into(),
            id: "3".into(),
            serves: vec![("data".into(), "127.0.0.1:7103".into())],
            master_grpc: vec!["127.0.0.1:7001".into()],
            master_admin: vec![],
        };
        let html = p.render();
        assert!(html.contains("<span id=\"role\">chunkserver</span>"));
        assert!(html.contains("<span id=\"node-id\">3</span>"));
        assert!(html.contains("id=\"master-admin-unknown\""));
        assert!(html.contains("<code>127.0.0.1:7001</code>"));
        p.master_admin = vec!["127.0.0.1:7081".into()];
        let html = p.render();
        assert!(html.contains("href=\"http://127.0.0.1:7081/\""));
        assert!(!html.contains("master-admin-unknown"));
        assert_eq!(p.get("/").unwrap().status, 200);
        assert!(p.get("/other").is_none());
    }
}
