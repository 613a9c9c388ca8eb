//! The configuration files and reference shipped in the repository agree with the code.

use std::path::PathBuf;

use visdcam_core::config::{self, Source, KEYS};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

#[test]
fn reference_is_generated_from_the_key_table() {
    let path = repo("docs/reference/config.md");
    let want = config::reference_markdown();
    if std::env::var_os("VISDCAM_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let got = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        got == want,
        "{} is out of date: run VISDCAM_BLESS=1 cargo test -p visdcam-core --test shipped_config",
        path.display()
    );
}

#[test]
fn shipped_global_file_documents_every_key_with_its_true_default() {
    let text = std::fs::read_to_string(repo("etc/visdcam.conf")).unwrap();
    // As shipped (everything commented out) it loads.
    config::load(
        Some(Source {
            path: "visdcam.conf",
            text: &text,
        }),
        None,
        "visdcam.conf",
    )
    .unwrap();
    for k in KEYS.iter().filter(|k| k.scope != config::Scope::Camera) {
        assert!(
            text.contains(&format!("#{}=", k.name)),
            "{} missing from etc/visdcam.conf",
            k.name
        );
    }
    // Uncommented, the documented defaults are exactly the built-in ones.
    let uncommented: String = text
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter(|l| {
            l.split_once('=')
                .is_some_and(|(k, _)| visdcam_core::envfile::valid_key(k))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let explicit = config::load(
        Some(Source {
            path: "x",
            text: &uncommented,
        }),
        None,
        "x",
    )
    .unwrap();
    let defaults = config::load(None, None, "x").unwrap();
    assert_eq!(
        format!("{:?}", explicit.presets),
        format!("{:?}", defaults.presets)
    );
    assert_eq!(explicit.seg_seconds, defaults.seg_seconds);
    assert_eq!(explicit.key_template, defaults.key_template);
    assert_eq!(explicit.shaper_rate_bps, defaults.shaper_rate_bps);
    assert_eq!(explicit.ram_budget_mb, defaults.ram_budget_mb);
    assert_eq!(explicit.upload_dscp, defaults.upload_dscp);
    assert_eq!(explicit.b2_endpoint, None);
}

#[test]
fn example_camera_file_loads() {
    let text = std::fs::read_to_string(repo("etc/cameras/cam1.conf.example")).unwrap();
    let s = config::load(
        None,
        Some((
            "cam1",
            Source {
                path: "cam1.conf",
                text: &text,
            },
        )),
        "g",
    )
    .unwrap();
    assert_eq!(
        s.camera_url.unwrap().to_string(),
        "http://192.168.1.33:81/stream"
    );
}
