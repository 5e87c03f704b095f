//! A real browser: headless Chromium (tests/browser/run.mjs) loads a small booking page from an origin in
//! ALLOWED_ORIGINS, books with `fetch` and shows the confirmation; the same page from another origin is refused
//! by CORS and books nothing. The success screenshot is kept in target/artifacts/booking-success.png.

use std::path::PathBuf;
use std::process::Command;

use crate::support::{new_provider, start_with, unique};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_from_the_practice_s_site_books_and_another_origin_is_refused() {
    let (allowed_port, other_port) = (free_port(), free_port());
    let allowed_origin = format!("http://127.0.0.1:{allowed_port}");
    let stack = start_with(module_path!(), None, false, &[("ALLOWED_ORIGINS", &allowed_origin)]).await;
    let provider = new_provider(&stack).await;
    let tag = unique("browser");
    let day = (chrono::Utc::now() + chrono::Duration::days(23)).format("%Y-%m-%d");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let artifacts = root.join("target/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("booking-success.png");
    let _ = std::fs::remove_file(&screenshot);

    let mut command = Command::new("node");
    command
        .arg(root.join("tests/browser/run.mjs"))
        .env("WORKER_URL", &stack.worker)
        .env("ALLOWED_PORT", allowed_port.to_string())
        .env("OTHER_PORT", other_port.to_string())
        .env("PROVIDER_ID", &provider)
        .env("START_ALLOWED", format!("{day}T15:00:00Z"))
        .env("START_OTHER", format!("{day}T17:00:00Z"))
        .env("EMAIL_TAG", &tag)
        .env("SCREENSHOT", &screenshot);
    let output = tokio::task::spawn_blocking(move || command.output().expect("run node tests/browser/run.mjs")).await.unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the browser saw something else:\n{report}");
    assert!(report.contains("Booked with Test "), "{report}");
    assert!(screenshot.exists(), "the success screenshot is kept");

    assert_eq!(stack.count("patients", "email = $1", &format!("{tag}.allowed@example.com")).await, 1, "the allowed page booked");
    assert_eq!(stack.rows_for_email(&format!("{tag}.other@example.com")).await, (0, 0, 0), "the refused page booked nothing");
}
