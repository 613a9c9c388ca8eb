//! The Chromium rig drives a real headless Chromium: a page served here loads, its script
//! runs, and screenshots of one element change when the page changes it.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use test_rigs::chromium::Chromium;

const PAGE: &str = "<!doctype html><html><body style='margin:0'>\
<div id='box' style='width:100px;height:80px;background:rgb(255,0,0)'></div>\
<p id='t'>hello from the page</p></body></html>";

#[test]
fn a_page_loads_runs_script_and_screenshots_follow_it() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut conn = conn;
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{PAGE}",
                PAGE.len()
            );
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Chromium::start(400, 300, tmp.path()).expect("starting chromium");
    c.navigate(&format!("http://{addr}/")).unwrap();
    c.wait_for(
        "document.getElementById('t')?.textContent === 'hello from the page'",
        Duration::from_secs(20),
    )
    .unwrap();
    let r = c.rect("#box").unwrap();
    assert_eq!((r.width, r.height), (100.0, 80.0));
    let red = c.screenshot(Some(r)).unwrap();
    assert_eq!(&red[1..4], b"PNG");
    assert_eq!(red, c.screenshot(Some(r)).unwrap(), "same pixels, same PNG");
    c.eval("document.getElementById('box').style.background = 'rgb(0,0,255)'")
        .unwrap();
    let blue = c.screenshot(Some(r)).unwrap();
    assert_ne!(red, blue, "the screenshot follows the page");
}
