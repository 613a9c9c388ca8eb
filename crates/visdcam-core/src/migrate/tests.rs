//! Data tests of the migration plan, against the visdcam-pi install in testdata/visdcam-pi
//! (the same files the end-to-end test lays down in a container).

use super::*;

/// The test install's files, by their path on a Pi.
fn tree() -> BTreeMap<String, String> {
    macro_rules! file {
        ($p:literal) => {
            (
                concat!("/", $p).to_string(),
                include_str!(concat!("../../testdata/visdcam-pi/", $p)).to_string(),
            )
        };
    }
    BTreeMap::from([
        file!("etc/systemd/system/seg-cam1.service"),
        file!("etc/systemd/system/seg-cam2.service"),
        file!("etc/systemd/system/uploader-cam1.service"),
        file!("etc/systemd/system/uploader-cam2.service"),
        file!("etc/systemd/system/visdcam-daynight.timer"),
        file!("etc/systemd/system/visdcam-daynight.service"),
        file!("etc/systemd/system/net-shaper.service"),
        file!("usr/local/bin/seg-cam1.sh"),
        file!("usr/local/bin/seg-cam2.sh"),
        file!("usr/local/bin/uploader-cam1.sh"),
        file!("usr/local/bin/uploader-cam2.sh"),
        file!("usr/local/bin/visdcam-daynight.sh"),
        file!("usr/local/bin/net-shaper.sh"),
        file!("usr/local/bin/visdcam"),
        file!("etc/default/uploader-cam1"),
        file!("etc/default/uploader-cam2"),
        file!("etc/tmpfiles.d/ramcam.conf"),
        file!("root/.aws/credentials"),
        file!("root/.aws/config"),
    ])
}

/// What the CLI would find on a Pi running the test install: every unit enabled and active
/// (the shaper too), segments waiting, the package freshly installed.
fn found_from(tree: &BTreeMap<String, String>) -> Found {
    let mut f = Found::default();
    for (path, text) in tree {
        if let Some(name) = path.strip_prefix("/etc/systemd/system/") {
            f.units.insert(name.to_string(), text.clone());
        }
    }
    // As the CLI does: read what the units and scripts refer to, until nothing new.
    loop {
        let want = referenced_files(&f.units, &f.files);
        let before = f.files.len();
        for p in want {
            if let Some(t) = tree.get(&p) {
                f.files.insert(p, t.clone());
            }
        }
        if f.files.len() == before {
            break;
        }
    }
    f.helper = tree.contains_key(OLD_HELPER);
    f.tmpfiles = tree.contains_key(OLD_TMPFILES);
    f.aws_credentials = tree.get(ROOT_AWS_CREDENTIALS).cloned();
    f.aws_config = tree.get(ROOT_AWS_CONFIG).cloned();
    for n in f.units.keys() {
        f.states.insert(
            n.clone(),
            UnitState {
                active: n != OLD_DAYNIGHT_SERVICE,
                enabled: n != OLD_DAYNIGHT_SERVICE,
            },
        );
    }
    f.new_states.insert(
        "daynight.timer".into(),
        UnitState {
            active: true,
            enabled: true,
        },
    );
    f.segments.insert(
        "cam1".into(),
        vec![
            seg("home-cam-1-00000.ts", 1_760_271_000_500),
            seg("home-cam-1-00001.ts", 1_760_271_060_500),
        ],
    );
    f.segments.insert("cam2".into(), vec![]);
    f.ram_root = Some(RamRoot::PlainDir);
    f.root_qdisc = Some("htb".into());
    f.config.insert(
        "/etc/visdcam/visdcam.conf".into(),
        "# defaults\n#B2_BUCKET=\n".into(),
    );
    f
}

fn seg(name: &str, ms: i64) -> OldSegment {
    OldSegment {
        name: name.into(),
        mtime_ns: ms * 1_000_000,
    }
}

fn write<'a>(p: &'a Plan, path: &str) -> &'a Write {
    p.writes
        .iter()
        .find(|w| w.path == path)
        .unwrap_or_else(|| panic!("no write of {path} in {p:#?}"))
}

#[test]
fn the_test_install_becomes_one_plan() {
    let f = found_from(&tree());
    let p = plan(&f, &Overrides::default(), "20261203-081500", "/etc/visdcam").unwrap();
    assert_eq!(p.cameras, ["cam1", "cam2"]);

    let cam1 = write(&p, "/etc/visdcam/cameras/cam1.conf");
    assert_eq!(
        cam1.text,
        "# cam1: migrated from visdcam-pi (seg-cam1.service) by `visdcam migrate`\n\
         CAMERA_URL=http://192.168.1.33:81/stream\nSEG_SECONDS=60\nRATE_KBPS=500\n"
    );
    let cam2 = write(&p, "/etc/visdcam/cameras/cam2.conf");
    assert!(cam2
        .text
        .contains("CAMERA_URL=http://192.168.1.36:81/stream\n"));
    assert!(cam2.text.contains("RATE_KBPS=300\n"));

    let global = write(&p, "/etc/visdcam/visdcam.conf");
    assert!(global.replaces);
    assert_eq!(
        global.text,
        "# defaults\n#B2_BUCKET=\nB2_PROFILE=b2\nB2_REGION=ca-east-006\n\
         B2_ENDPOINT=https://s3.ca-east-006.backblazeb2.com\nB2_BUCKET=visd-cctv\n\
         B2_ADDRESSING_STYLE=virtual\nKEY_TZ=Asia/Kolkata\nSHAPER_DEV=eth0\nSHAPER_RATE=3mbit\n"
    );

    let creds = write(&p, CREDENTIALS_FILE);
    assert_eq!(creds.mode, 0o600);
    assert!(creds.text.contains(
        "[b2]\naws_access_key_id = 0051234567890ab0000000001\n\
         aws_secret_access_key = K005abcdefghijklmnopqrstuvwxyz0\n"
    ));
    assert!(!creds.text.contains("AKIAOTHER"), "only the b2 profile");
    assert!(!creds.what.contains("K005"), "{}", creds.what);

    assert_eq!(
        p.store,
        Some(StoreTarget {
            endpoint: "https://s3.ca-east-006.backblazeb2.com".into(),
            bucket: "visd-cctv".into(),
            region: Some("ca-east-006".into()),
            profile: "b2".into(),
            path_style: false,
            credentials: ROOT_AWS_CREDENTIALS.into(),
        })
    );
    assert_eq!(
        p.stop,
        [
            "seg-cam1.service",
            "seg-cam2.service",
            "uploader-cam1.service",
            "uploader-cam2.service",
            "visdcam-daynight.timer",
            "net-shaper.service"
        ]
    );
    assert_eq!(p.disable, p.stop);
    assert_eq!(p.clear_qdisc.as_deref(), Some("eth0"));
    for path in [
        "/etc/systemd/system/seg-cam1.service",
        "/etc/systemd/system/visdcam-daynight.service",
        "/etc/systemd/system/net-shaper.service",
        "/usr/local/bin/seg-cam2.sh",
        "/usr/local/bin/uploader-cam1.sh",
        "/usr/local/bin/visdcam-daynight.sh",
        "/usr/local/bin/net-shaper.sh",
        OLD_HELPER,
        OLD_TMPFILES,
    ] {
        assert!(p.backup.iter().any(|b| b == path), "{path} not backed up");
    }
    assert_eq!(p.backup_dir, "/var/backups/visdcam-pi-20261203-081500");
    assert_eq!(
        p.handovers,
        [
            Handover {
                camera: "cam1".into(),
                count: 2
            },
            Handover {
                camera: "cam2".into(),
                count: 0
            }
        ]
    );
    assert!(p.ramlogs);
    assert_eq!(
        p.enable,
        [
            "seg@cam1.service",
            "uploader@cam1.service",
            "seg@cam2.service",
            "uploader@cam2.service",
            "daynight.timer",
            "net-shaper.service"
        ]
    );
    assert_eq!(p.start, p.enable);

    let text = p.to_string();
    for want in [
        "camera cam1: stream http://192.168.1.33:81/stream (from /usr/local/bin/seg-cam1.sh)",
        "camera cam2: upload cap RATE_KBPS=300 KiB/s (from /etc/default/uploader-cam2)",
        "B2_BUCKET=visd-cctv (from /usr/local/bin/uploader-cam1.sh)",
        "B2_REGION=ca-east-006 (from /usr/local/bin/uploader-cam1.sh)",
        "check that bucket visd-cctv at https://s3.ca-east-006.backblazeb2.com accepts profile [b2]",
        "stop seg-cam1.service, seg-cam2.service, uploader-cam1.service",
        "remove the old shaper's root qdisc on eth0",
        "(now cam1: 2, cam2: 0)",
        "/mnt/ramcam is a plain directory",
        "keep the journal in RAM",
        "run `visdcam doctor`",
    ] {
        assert!(text.contains(want), "plan lacks {want:?}:\n{text}");
    }
    assert!(
        !text.contains("K005abc"),
        "the secret is never printed:\n{text}"
    );
}

#[test]
fn region_comes_from_the_aws_config_when_the_scripts_do_not_say() {
    let mut t = tree();
    for n in [1, 2] {
        let p = format!("/usr/local/bin/uploader-cam{n}.sh");
        let s = t[&p]
            .replace("B2_REGION=\"${B2_REGION:-ca-east-006}\"\n", "")
            .replace(
                "B2_ENDPOINT=\"${B2_ENDPOINT:-https://s3.${B2_REGION}.backblazeb2.com}\"\n",
                "",
            )
            .replace(" --region \"$B2_REGION\"", "")
            .replace("--endpoint-url \"$B2_ENDPOINT\" ", "");
        t.insert(p, s);
    }
    t.insert(
        ROOT_AWS_CONFIG.into(),
        "[profile b2]\nregion = us-west-004\ns3 =\n  addressing_style = path\n".into(),
    );
    let p = plan(&found_from(&t), &Overrides::default(), "x", "/etc/visdcam").unwrap();
    let s = p.store.unwrap();
    assert_eq!(s.region.as_deref(), Some("us-west-004"));
    assert_eq!(s.endpoint, "https://s3.us-west-004.backblazeb2.com");
    assert!(s.path_style);
    assert!(p
        .found
        .contains(&"B2_REGION=us-west-004 (from /root/.aws/config)".to_string()));
}

#[test]
fn what_cannot_be_found_is_named_and_comes_from_a_flag() {
    let mut t = tree();
    for n in [1, 2] {
        let p = format!("/usr/local/bin/uploader-cam{n}.sh");
        let s = t[&p].replace("BUCKET=visd-cctv\n", "BUCKET=$(cat /etc/visdcam-bucket)\n");
        t.insert(p, s);
    }
    let f = found_from(&t);
    let e = plan(&f, &Overrides::default(), "x", "/etc/visdcam").unwrap_err();
    assert!(
        e.0.contains("no bucket found") && e.0.contains("--bucket NAME"),
        "{e}"
    );
    let over = Overrides {
        bucket: Some("my-bucket".into()),
        ..Overrides::default()
    };
    let p = plan(&f, &over, "x", "/etc/visdcam").unwrap();
    assert_eq!(p.store.unwrap().bucket, "my-bucket");
    assert!(p
        .found
        .contains(&"B2_BUCKET=my-bucket (from --bucket)".to_string()));

    // A recorder whose script builds the address at run time.
    let mut t = tree();
    t.insert(
        "/usr/local/bin/seg-cam2.sh".into(),
        "#!/bin/sh\nexec gst-launch-1.0 souphttpsrc location=\"$(cat /etc/cam2-url)\" ! fakesink\n"
            .into(),
    );
    let f = found_from(&t);
    let e = plan(&f, &Overrides::default(), "x", "/etc/visdcam").unwrap_err();
    assert_eq!(
        e.0,
        "camera cam2: no stream address found in /etc/systemd/system/seg-cam2.service or its \
         script; give it with --camera cam2=http://ADDRESS:81/stream"
    );
    let over = Overrides {
        cameras: BTreeMap::from([("cam2".into(), "http://10.0.0.9:81/stream".into())]),
        ..Overrides::default()
    };
    let p = plan(&f, &over, "x", "/etc/visdcam").unwrap();
    let cam2 = write(&p, "/etc/visdcam/cameras/cam2.conf");
    assert!(cam2.text.contains("CAMERA_URL=http://10.0.0.9:81/stream\n"));
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("camera cam2: the segment length was not found")),
        "{:?}",
        p.notes
    );
}

#[test]
fn urls_from_unit_environment_arguments_and_plain_addresses() {
    let mut t = tree();
    // One shared script, the camera in the unit's arguments and environment.
    t.insert(
        "/etc/systemd/system/seg-cam1.service".into(),
        "[Service]\nEnvironment=\"CAM=cam1\" SEG=30\nExecStart=/usr/local/bin/record.sh 10.1.2.3\n"
            .into(),
    );
    t.insert(
        "/usr/local/bin/record.sh".into(),
        "#!/bin/sh\nHOST=$1\nexec gst-launch-1.0 souphttpsrc location=http://$HOST:81/stream ! \
         splitmuxsink max-size-time=$((SEG*1000000000)) location=/mnt/ramcam/$CAM/home-cam-1-%05d.ts\n"
            .into(),
    );
    // A script that only names the camera's address.
    t.insert(
        "/usr/local/bin/seg-cam2.sh".into(),
        "#!/bin/sh\nCAMERA_IP=\"192.168.1.36\"\nexec gst-launch-1.0 -e souphttpsrc \
         location=\"http://${CAMERA_IP}/\" ! fakesink\n"
            .into(),
    );
    let p = plan(&found_from(&t), &Overrides::default(), "x", "/etc/visdcam").unwrap();
    assert!(write(&p, "/etc/visdcam/cameras/cam1.conf")
        .text
        .contains("CAMERA_URL=http://10.1.2.3:81/stream\n"));
    assert!(write(&p, "/etc/visdcam/cameras/cam2.conf")
        .text
        .contains("CAMERA_URL=http://192.168.1.36:81/stream\n"));
    assert!(p.backup.contains(&"/usr/local/bin/record.sh".to_string()));
}

#[test]
fn nothing_old_means_an_empty_plan_and_a_second_run_changes_nothing() {
    let first = plan(
        &found_from(&tree()),
        &Overrides::default(),
        "x",
        "/etc/visdcam",
    )
    .unwrap();
    // After the first run: old files in the backup, new configuration written.
    let mut after = Found::default();
    for w in &first.writes {
        after.config.insert(w.path.clone(), w.text.clone());
    }
    after.ram_root = Some(RamRoot::MountPoint);
    after.new_states.insert(
        "daynight.timer".into(),
        UnitState {
            active: true,
            enabled: true,
        },
    );
    let second = plan(&after, &Overrides::default(), "y", "/etc/visdcam").unwrap();
    assert!(second.is_empty(), "{second:#?}");
    assert!(second.writes.is_empty() && second.enable.is_empty() && second.start.is_empty());
    assert!(second.to_string().contains("nothing to migrate"));
}

#[test]
fn existing_configuration_is_kept_around_the_migrated_keys() {
    let mut f = found_from(&tree());
    f.config.insert(
        "/etc/visdcam/cameras/cam1.conf".into(),
        "# porch\nCAMERA_URL=http://192.168.1.33:81/stream\nX264_BITRATE_KBPS=800\n".into(),
    );
    f.config.insert(
        CREDENTIALS_FILE.into(),
        "[b2]\naws_access_key_id = newkey\naws_secret_access_key = s\n".into(),
    );
    let p = plan(&f, &Overrides::default(), "x", "/etc/visdcam").unwrap();
    let cam1 = write(&p, "/etc/visdcam/cameras/cam1.conf");
    assert!(cam1.replaces);
    assert_eq!(
        cam1.text,
        "# porch\nCAMERA_URL=http://192.168.1.33:81/stream\nX264_BITRATE_KBPS=800\n\
         SEG_SECONDS=60\nRATE_KBPS=500\n"
    );
    assert!(p.writes.iter().all(|w| w.path != CREDENTIALS_FILE));
    assert_eq!(p.store.unwrap().credentials, CREDENTIALS_FILE);
}

#[test]
fn differing_buckets_are_refused_rather_than_guessed() {
    let mut t = tree();
    let p = "/usr/local/bin/uploader-cam2.sh".to_string();
    let s = t[&p].replace("BUCKET=visd-cctv", "BUCKET=other-bucket");
    t.insert(p, s);
    let e = plan(&found_from(&t), &Overrides::default(), "x", "/etc/visdcam").unwrap_err();
    assert!(e.0.contains("different buckets"), "{e}");
    assert!(
        e.0.contains("visd-cctv in /usr/local/bin/uploader-cam1.sh"),
        "{e}"
    );
}

#[test]
fn units_are_classified_by_name() {
    assert_eq!(
        old_unit("seg-cam1.service"),
        Some(OldUnit::Recorder("cam1".into()))
    );
    assert_eq!(
        old_unit("uploader-front-door.service"),
        Some(OldUnit::Uploader("front-door".into()))
    );
    assert_eq!(
        old_unit("visdcam-daynight.timer"),
        Some(OldUnit::DaynightTimer)
    );
    assert_eq!(old_unit("net-shaper.service"), Some(OldUnit::Shaper));
    assert_eq!(old_unit("seg@.service"), None);
    assert_eq!(old_unit("seg-cam1.timer"), None);
    assert_eq!(old_unit("sshd.service"), None);
}

#[test]
fn old_segments_get_names_keyed_by_their_mtime() {
    let segs = [
        seg("home-cam-1-00007.ts", 1_760_271_060_250),
        seg("home-cam-1-00006.ts", 1_760_271_000_100),
        seg("home-cam-1-00009.ts", 1_760_271_200_000),
        seg("notes.txt", 1),
    ];
    let n = handover_names(&segs, 60);
    assert_eq!(
        n.iter()
            .map(|(old, new)| format!("{old} {}", new.final_name()))
            .collect::<Vec<_>>(),
        [
            // No predecessor: its mtime minus the segment length.
            "home-cam-1-00006.ts seg-1760270940100-0006.ts",
            // The previous file closed when this one opened.
            "home-cam-1-00007.ts seg-1760271000100-0007.ts",
            "home-cam-1-00009.ts seg-1760271140000-0009.ts",
        ]
    );
    assert_eq!(old_segment_counter("home-cam-2-00042.ts"), Some(42));
    assert_eq!(old_segment_counter("home-cam-2-x.ts"), None);
}

#[test]
fn nested_aws_config_settings() {
    let cfg = "[default]\nregion = a\n[profile b2]\nregion = ca-east-006\ns3 =\n    \
               signature_version = s3v4\n    addressing_style = virtual\n[profile x]\ns3 =\n  \
               addressing_style = path\n";
    assert_eq!(
        nested_setting(cfg, "b2", "s3", "addressing_style").as_deref(),
        Some("virtual")
    );
    assert_eq!(
        nested_setting(cfg, "x", "s3", "addressing_style").as_deref(),
        Some("path")
    );
    assert_eq!(
        nested_setting(cfg, "default", "s3", "addressing_style"),
        None
    );
}

#[test]
fn the_undo_script_moves_everything_back_and_restarts_the_old_units() {
    let p = plan(
        &found_from(&tree()),
        &Overrides::default(),
        "x",
        "/etc/visdcam",
    )
    .unwrap();
    let s = undo_script(&p);
    assert!(s.starts_with("#!/bin/sh\n"));
    assert!(s.contains(
        "if [ -e './etc/systemd/system/seg-cam1.service' ] || [ -L \
         './etc/systemd/system/seg-cam1.service' ]; then mkdir -p '/etc/systemd/system'; mv \
         './etc/systemd/system/seg-cam1.service' '/etc/systemd/system/seg-cam1.service'; fi\n"
    ));
    assert!(s.contains("cp -p './etc/visdcam/visdcam.conf' '/etc/visdcam/visdcam.conf'"));
    assert!(s.contains("systemd-tmpfiles --create /etc/tmpfiles.d/ramcam.conf\n"));
    assert!(s.contains(
        "systemctl start 'seg-cam1.service' 'seg-cam2.service' 'uploader-cam1.service' \
         'uploader-cam2.service' 'visdcam-daynight.timer' 'net-shaper.service'\n"
    ));
    let disable = s
        .lines()
        .find(|l| l.starts_with("systemctl disable --now"))
        .unwrap();
    assert!(disable.contains("'seg@cam1.service'"), "{disable}");
    // The disable of the new units comes before the old files come back.
    assert!(s.find("disable --now").unwrap() < s.find("mv ").unwrap());
}

#[test]
fn the_package_s_own_units_and_referenced_files() {
    assert!(is_package_unit(
        "[Service]\nExecStart=/usr/bin/net-shaper apply\nExecStop=/usr/bin/net-shaper clear\n"
    ));
    assert!(!is_package_unit(
        &tree()["/etc/systemd/system/net-shaper.service"]
    ));
    let units = BTreeMap::from([(
        "uploader-cam3.service".to_string(),
        "[Service]\nEnvironmentFile=-/etc/visdcam-pi/cam3.env\nExecStart=/bin/bash \
         /usr/local/bin/up.sh cam3\n"
            .to_string(),
    )]);
    let files = BTreeMap::from([(
        "/usr/local/bin/up.sh".to_string(),
        "#!/bin/bash\nsource /etc/visdcam-pi/common.sh\n".to_string(),
    )]);
    assert_eq!(
        referenced_files(&units, &files)
            .into_iter()
            .collect::<Vec<_>>(),
        [
            "/etc/default/uploader-cam3",
            "/etc/visdcam-pi/cam3.env",
            "/etc/visdcam-pi/common.sh",
            "/usr/local/bin/up.sh"
        ]
    );
}

#[test]
fn a_symlinked_ram_directory_is_said_in_the_plan() {
    let mut f = found_from(&tree());
    f.ram_root = Some(RamRoot::Symlink {
        target: "/dev/shm/ramcam".into(),
    });
    let text = plan(&f, &Overrides::default(), "x", "/etc/visdcam")
        .unwrap()
        .to_string();
    assert!(
        text.contains("/mnt/ramcam is a symlink to /dev/shm/ramcam, on which systemd cannot mount"),
        "{text}"
    );
}
