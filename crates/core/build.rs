//! Build script: the OpenAPI document without its indentation.
//!
//! `src/openapi.json` is kept pretty-printed for people and diffs; the
//! worker embeds and serves it, so every byte of whitespace costs wasm size
//! (about 40 % of the file, and the worker has a 250 KB gzip budget). This
//! writes `$OUT_DIR/openapi.min.json`: the same text with the whitespace
//! between JSON tokens removed — key order and every string unchanged —
//! which `ops::OPENAPI_JSON` includes. No dependencies: a JSON token
//! boundary only needs string and escape tracking.

use std::{env, fs, path::Path};

fn main() {
    println!("cargo:rerun-if-changed=src/openapi.json");
    let text = fs::read_to_string("src/openapi.json").expect("src/openapi.json is readable UTF-8");
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\n' | '\r' | '\t') {
            out.push(c);
        }
    }
    let dest = Path::new(&env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("openapi.min.json");
    fs::write(dest, out).expect("OUT_DIR is writable");
}
