//! `report.html` in a real browser: a real comparison (nginx proxy, upstream nginx, wrk on
//! loopback) writes the page, and Debian's headless `chromium` loads it, renders it and takes a
//! screenshot (installed by scripts/install-deps.sh).
//!
//! What the browser shows is checked three ways: the page text after rendering (`--dump-dom`),
//! the laid-out sizes of every table and chart (a copy of the page with a small script appended
//! that writes them into the DOM once everything has loaded), and the screenshot (its
//! dimensions, and that it holds far more picture than a blank page of the same size).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::{Lab, load_lock, only_results_folder};

/// The headless browser, as Debian (`chromium`) or Ubuntu (`chromium-browser`) name it.
fn chromium() -> PathBuf {
    ["chromium", "chromium-browser"]
        .iter()
        .find_map(|b| which(b))
        .expect("chromium is not installed: run scripts/install-deps.sh (apt-get install chromium)")
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Runs headless chromium with a private profile on `url` plus `args`; returns stdout. The
/// page needs no network, and the browser gets none: its own background services are off and
/// every request it could still make goes to a proxy on a closed loopback port (the network
/// rule: traffic only to loopback).
fn browse(profile: &Path, args: &[&str], url: &str) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-breakpad",
            "--disable-crash-reporter",
            "--disable-component-update",
            "--disable-sync",
            "--disable-domain-reliability",
            "--no-default-browser-check",
            "--proxy-server=127.0.0.1:9",
            "--proxy-bypass-list=<-loopback>",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("chromium starts");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG file");
    assert_eq!(&png[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&png[16..20]), be(&png[20..24]))
}

/// Appended to a copy of the page: once everything has loaded, writes the size of every table
/// and chart image into a `<pre id="probe">` as JSON lines.
const PROBE: &str = r#"<script>
window.addEventListener('load', () => {
  const lines = [];
  for (const t of document.querySelectorAll('table')) {
    const r = t.getBoundingClientRect();
    lines.push(JSON.stringify({kind: 'table', class: t.className, rows: t.rows.length,
                               width: r.width, height: r.height}));
  }
  for (const i of document.querySelectorAll('img')) {
    const r = i.getBoundingClientRect();
    lines.push(JSON.stringify({kind: 'img', alt: i.alt, complete: i.complete,
                               natural_width: i.naturalWidth, natural_height: i.naturalHeight,
                               width: r.width, height: r.height}));
  }
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = lines.join('\n');
  document.body.appendChild(pre);
});
</script>"#;

#[test]
fn report_html_renders_tables_and_charts_in_chromium() {
    let _g = load_lock();
    let lab = Lab::new();
    let root = lab.root();
    std::fs::create_dir_all(root.join("profile")).unwrap();
    // An A/A comparison (restart design) of the nginx proxy case: a summary, a comparison with
    // intervals and verdicts, and charts. The figures do not matter here, only what is drawn.
    let out = lab
        .perflab()
        .args(["compare", "current", "current", "--design", "restart"])
        .args(["--suite", "rps", "--tags", "simple-proxy@nginx"])
        .args(["--duration", "1", "--repeat", "2", "--warmup", "0"])
        .args([
            "--cooldown-max",
            "0",
            "--noisy-pct",
            "100",
            "--include-flagged",
        ])
        .args(["--plain", "--output"])
        .arg(lab.output())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = only_results_folder(&lab.output());
    let page = dir.join("report.html");
    assert!(
        stdout.contains(&format!("report: {}", page.display())),
        "{stdout}"
    );
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: no script, stylesheet link or remote reference; images are data: URIs.
    assert!(!html.contains("<script") && !html.contains("<link"));
    for src in html.split("src=\"").skip(1) {
        assert!(
            src.starts_with("data:image/svg+xml;base64,"),
            "{}",
            &src[..40]
        );
    }
    for href in html.split("href=\"").skip(1) {
        let target = href.split('"').next().unwrap();
        assert!(!target.contains("://"), "{target}");
    }

    // The rendered text: tables, verdicts with intervals and MDE, commands, fingerprint.
    let profile = root.join("profile");
    let dom = browse(
        &profile,
        &["--dump-dom"],
        &format!("file://{}", page.display()),
    );
    for needle in [
        "Comparison against <code>current</code>",
        "<td>rps (req/s)</td>",
        "95% CI",
        "MDE",
        "restart design: 2 pairs",
        "simple-proxy@nginx",
        "id=\"command\"",
        "compare current current --design restart",
        "Environment fingerprint",
    ] {
        assert!(dom.contains(needle), "rendered page lacks {needle:?}");
    }

    // Laid-out sizes: every table has rows and area, every chart decoded and is shown.
    let probe_page = dir.join("probe.html");
    std::fs::write(
        &probe_page,
        html.replace("</body>", &format!("{PROBE}\n</body>")),
    )
    .unwrap();
    let dom = browse(
        &profile,
        &["--dump-dom"],
        &format!("file://{}", probe_page.display()),
    );
    let probe = dom
        .split("<pre id=\"probe\">")
        .nth(1)
        .and_then(|s| s.split("</pre>").next())
        .expect("the probe script ran");
    let items: Vec<serde_json::Value> = probe
        .lines()
        .map(|l| serde_json::from_str(&l.replace("&quot;", "\"")).unwrap())
        .collect();
    let tables: Vec<&serde_json::Value> = items.iter().filter(|i| i["kind"] == "table").collect();
    let imgs: Vec<&serde_json::Value> = items.iter().filter(|i| i["kind"] == "img").collect();
    for class in ["compare", "summary", "fingerprint"] {
        let t = tables
            .iter()
            .find(|t| t["class"] == class)
            .unwrap_or_else(|| panic!("no {class} table in {items:?}"));
        assert!(t["rows"].as_u64().unwrap() >= 2, "{t}");
        assert!(t["width"].as_f64().unwrap() > 200.0, "{t}");
        assert!(t["height"].as_f64().unwrap() > 30.0, "{t}");
    }
    let svgs = std::fs::read_dir(dir.join("charts"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "svg"))
        .count();
    assert!(svgs >= 3, "charts written");
    assert_eq!(imgs.len(), svgs, "every chart embedded: {imgs:?}");
    for i in &imgs {
        assert_eq!(i["complete"], true, "{i}");
        assert!(
            i["natural_width"].as_u64().unwrap() > 100,
            "the SVG decoded: {i}"
        );
        assert!(i["width"].as_f64().unwrap() > 100.0, "{i}");
        assert!(i["height"].as_f64().unwrap() > 100.0, "{i}");
    }

    // The screenshot: the requested size, and much more drawn than on a blank page.
    let shot = root.join("report.png");
    let blank = root.join("blank.png");
    let size = "--window-size=1280,2400";
    browse(
        &profile,
        &[size, &format!("--screenshot={}", shot.display())],
        &format!("file://{}", page.display()),
    );
    browse(
        &profile,
        &[size, &format!("--screenshot={}", blank.display())],
        "about:blank",
    );
    let (shot, blank) = (
        std::fs::read(&shot).unwrap(),
        std::fs::read(&blank).unwrap(),
    );
    assert_eq!(png_size(&shot), (1280, 2400));
    assert_eq!(png_size(&blank), (1280, 2400));
    assert!(
        shot.len() > 10 * blank.len(),
        "the screenshot ({} bytes) looks blank ({} bytes for an empty page)",
        shot.len(),
        blank.len()
    );
}
