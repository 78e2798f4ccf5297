//! Reading the recorded kube-apiserver exchanges in `tests/apiserver-transcripts/`.

use std::path::PathBuf;

use serde_json::Value;

/// One request and the recorded answer.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    pub target: String,
    pub request_headers: Vec<(String, String)>,
    pub request_body: Option<String>,
    pub status: u16,
    pub response_headers: Vec<(String, String)>,
    /// A plain JSON body.
    pub body: Option<Value>,
    /// Watch events, one JSON object per line.
    pub events: Vec<Value>,
    /// Port-forward frames: (server to client?, opcode, payload bytes).
    pub frames: Vec<(bool, String, Vec<u8>)>,
}

pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/apiserver-transcripts")
}

/// The file whose name starts with `prefix` (such as `"05a"`).
pub fn load(prefix: &str) -> Vec<Exchange> {
    let entry = std::fs::read_dir(dir())
        .expect("transcripts dir")
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with(&format!("{prefix}-")))
        .unwrap_or_else(|| panic!("no transcript {prefix}"));
    parse(&std::fs::read_to_string(entry.path()).expect("read transcript"))
}

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'x' if i + 3 < b.len() => {
                    out.push(u8::from_str_radix(&s[i + 2..i + 4], 16).expect("hex escape"));
                    i += 4;
                    continue;
                }
                b'r' => out.push(b'\r'),
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'\\' => out.push(b'\\'),
                b'\'' => out.push(b'\''),
                other => {
                    out.push(b'\\');
                    out.push(other);
                }
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

pub fn parse(text: &str) -> Vec<Exchange> {
    let mut out: Vec<Exchange> = Vec::new();
    let mut section = "";
    let mut body_text = String::new();
    let flush_body = |ex: &mut Exchange, body_text: &mut String| {
        let t = body_text.trim();
        if !t.is_empty() && t.starts_with('{') && ex.body.is_none() && ex.events.is_empty() {
            ex.body = serde_json::from_str(t).ok();
        }
        body_text.clear();
    };
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            if let Some(ex) = out.last_mut() {
                if section == "body" {
                    flush_body(ex, &mut body_text);
                }
            }
            section = if h.starts_with("REQUEST") {
                out.push(Exchange {
                    method: String::new(),
                    target: String::new(),
                    request_headers: Vec::new(),
                    request_body: None,
                    status: 0,
                    response_headers: Vec::new(),
                    body: None,
                    events: Vec::new(),
                    frames: Vec::new(),
                });
                "request"
            } else if h.starts_with("RESPONSE") {
                "response"
            } else if h.starts_with("BODY") && h.contains("one JSON object") {
                "events"
            } else if h.starts_with("BODY") {
                "body"
            } else if h.starts_with("WEBSOCKET FRAMES") {
                "frames"
            } else {
                "other"
            };
            continue;
        }
        let Some(ex) = out.last_mut() else { continue };
        match section {
            "request" => {
                if ex.method.is_empty() {
                    if let Some((m, rest)) = line.split_once(' ') {
                        ex.method = m.to_string();
                        ex.target = rest.trim_end_matches(" HTTP/1.1").to_string();
                    }
                } else if line.starts_with("(body shown") {
                } else if let Some((k, v)) = line.split_once(": ").filter(|_| ex.request_body.is_none()) {
                    ex.request_headers.push((k.to_lowercase(), v.to_string()));
                } else if !line.is_empty() {
                    ex.request_body = Some(line.to_string());
                }
            }
            "response" => {
                if let Some(rest) = line.strip_prefix("HTTP/1.1 ") {
                    ex.status = rest[..3].parse().expect("status");
                } else if let Some((k, v)) = line.split_once(": ") {
                    ex.response_headers.push((k.to_lowercase(), v.to_string()));
                }
            }
            "body" => {
                body_text.push_str(line);
                body_text.push('\n');
            }
            "events" if line.starts_with('{') => {
                ex.events.push(serde_json::from_str(line).expect("event line"));
            }
            "frames" => {
                // `S->C  +  0.007s  1  2 (binary)   False     3  \x00\x90\x1f`
                let server = line.starts_with("S->C");
                if !(server || line.starts_with("C->S")) {
                    continue;
                }
                let (Some(open), Some(close)) = (line.find('('), line.find(')')) else { continue };
                let opcode = line[open + 1..close].to_string();
                let rest = line[close + 1..].trim_start();
                let mut it = rest.splitn(2, char::is_whitespace);
                let _masked = it.next();
                let rest = it.next().unwrap_or("").trim_start();
                let mut it = rest.splitn(2, "  ");
                let _len = it.next();
                let payload = it.next().unwrap_or("");
                ex.frames.push((server, opcode, unescape(payload)));
            }
            _ => {}
        }
    }
    if let Some(ex) = out.last_mut() {
        if section == "body" {
            flush_body(ex, &mut body_text);
        }
    }
    out
}
