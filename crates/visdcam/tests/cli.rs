//! The real `visdcam` binary against configuration and RAM directories in a temporary
//! directory: help, exit codes, exact error messages, getdur/setdur file handling, lsram and
//! clean on real segment files. Nothing here needs systemd (see cli_systemd.rs for that).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

struct Setup {
    _tmp: tempfile::TempDir,
    conf: PathBuf,
    ram: PathBuf,
}

const CAM1: &str =
    "# Porch camera\nCAMERA_URL=http://127.0.0.1:9/stream\n\n# length\nSEG_SECONDS=60\n";

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("etc");
    let ram = tmp.path().join("ram");
    fs::create_dir_all(conf.join("cameras")).unwrap();
    fs::create_dir_all(&ram).unwrap();
    fs::write(
        conf.join("visdcam.conf"),
        format!("RAM_DIR={}\nRAM_BUDGET_MB=1\n", ram.display()),
    )
    .unwrap();
    fs::write(conf.join("cameras/cam1.conf"), CAM1).unwrap();
    fs::write(
        conf.join("cameras/cam2.conf"),
        "CAMERA_URL=http://127.0.0.1:9/stream\n",
    )
    .unwrap();
    Setup {
        _tmp: tmp,
        conf,
        ram,
    }
}

/// Runs visdcam with the config dir set and no reachable system bus.
fn run(s: &Setup, args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_visdcam"));
    cmd.args(args)
        .env("VISDCAM_CONFIG_DIR", &s.conf)
        .env(
            "DBUS_SYSTEM_BUS_ADDRESS",
            format!("unix:path={}/no-bus", s.conf.display()),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("running visdcam");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn expect(out: &Output, code: i32, stdout_has: &str, stderr_is: &str) {
    let (o, e) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(code),
        "status\nstdout:\n{o}\nstderr:\n{e}"
    );
    assert!(o.contains(stdout_has), "stdout lacks {stdout_has:?}:\n{o}");
    assert_eq!(e, stderr_is, "stderr");
}

#[test]
fn help_for_every_command_and_usage_errors_exit_2() {
    let s = setup();
    let out = run(&s, &["help"], "");
    expect(&out, 0, "Exit status:", "");
    for cmd in [
        "status", "start", "stop", "restart", "logs", "lsram", "clean", "getdur", "setdur",
        "enable", "disable", "cameras", "preset", "doctor", "ramlogs",
    ] {
        let out = run(&s, &["help", cmd], "");
        expect(&out, 0, &format!("Usage: visdcam {cmd}"), "");
        assert_eq!(run(&s, &[cmd, "--help"], "").stdout, out.stdout);
    }
    expect(
        &run(&s, &["setdur", "cam1", "abc"], ""),
        2,
        "",
        "visdcam: invalid segment length `abc`: `abc` is not a whole number; allowed: an integer \
         from 2 to 3600 (seconds)\nUsage: visdcam setdur CAMERA SECONDS\nTry `visdcam help setdur`.\n",
    );
    expect(
        &run(&s, &["stauts"], ""),
        2,
        "",
        "visdcam: unknown command `stauts`\nTry `visdcam help`.\n",
    );
}

#[test]
fn unknown_camera_lists_known_ones_and_exits_2() {
    let s = setup();
    for args in [
        &["getdur", "cam9"][..],
        &["restart", "cam9"],
        &["lsram", "cam9"],
        &["clean", "cam9", "--yes"],
        &["setdur", "cam9", "30"],
        &["logs", "cam9"],
    ] {
        expect(
            &run(&s, args, ""),
            2,
            "",
            &format!(
                "visdcam: unknown camera `cam9`: no {}/cameras/cam9.conf (known: cam1, cam2)\n",
                s.conf.display()
            ),
        );
    }
}

#[test]
fn missing_or_invalid_config_exits_78() {
    let s = setup();
    fs::remove_file(s.conf.join("cameras/cam1.conf")).unwrap();
    fs::remove_file(s.conf.join("cameras/cam2.conf")).unwrap();
    expect(
        &run(&s, &["restart", "all"], ""),
        78,
        "",
        &format!(
            "visdcam: no cameras configured: add {}/cameras/<name>.conf (copy cam1.conf.example \
             and set CAMERA_URL)\n",
            s.conf.display()
        ),
    );
    fs::write(
        s.conf.join("cameras/cam1.conf"),
        "CAMERA_URL=http://x:81/\nSEG_SECONDS=1\n",
    )
    .unwrap();
    expect(
        &run(&s, &["getdur", "cam1"], ""),
        78,
        "",
        &format!(
            "visdcam: {}/cameras/cam1.conf:2: SEG_SECONDS: 1 is out of range; allowed: an integer \
             from 2 to 3600\n",
            s.conf.display()
        ),
    );
}

#[test]
fn getdur_says_where_and_setdur_leaves_file_untouched_on_errors() {
    let s = setup();
    let out = run(&s, &["getdur"], "");
    expect(
        &out,
        0,
        &format!(
            "cam1 60 ({0}/cameras/cam1.conf:5)\ncam2 60 (default)\n",
            s.conf.display()
        ),
        "",
    );
    let before = fs::read(s.conf.join("cameras/cam1.conf")).unwrap();
    // Out of range: a usage error before anything is touched.
    expect(
        &run(&s, &["setdur", "cam1", "7200"], ""),
        2,
        "",
        "visdcam: invalid segment length `7200`: 7200 is out of range; allowed: an integer from 2 \
         to 3600 (seconds)\nUsage: visdcam setdur CAMERA SECONDS\nTry `visdcam help setdur`.\n",
    );
    // Valid value, but no systemd to restart the recorder: nothing is written either.
    let out = run(&s, &["setdur", "cam1", "30"], "");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with(&format!(
            "visdcam: cannot connect to the system bus at unix:path={}/no-bus: ",
            s.conf.display()
        )),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(fs::read(s.conf.join("cameras/cam1.conf")).unwrap(), before);
    let leftovers: Vec<_> = fs::read_dir(s.conf.join("cameras"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "{leftovers:?}");
}

fn touch(path: &Path, bytes: usize, age: Duration) {
    fs::write(path, vec![0x47u8; bytes]).unwrap();
    let f = fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

#[test]
fn lsram_and_clean_on_real_segment_files() {
    let s = setup();
    let dir = s.ram.join("cam1");
    fs::create_dir_all(&dir).unwrap();
    let old = dir.join("seg-1760271142000-00aa.ts");
    let newer = dir.join("seg-1760271202000-00bb.ts");
    let part = dir.join("seg-1760271262000-00cc.ts.part");
    touch(&old, 300_000, Duration::from_secs(3 * 3600));
    touch(&newer, 200_000, Duration::from_secs(60));
    touch(&part, 50_000, Duration::from_secs(0));
    touch(&dir.join(".uploader-stats"), 10, Duration::ZERO);

    let out = run(&s, &["lsram", "cam1"], "");
    expect(&out, 0, "  seg-1760271142000-00aa.ts", "");
    let o = text(&out.stdout);
    assert!(
        o.contains("293.0 KiB") && o.contains("3h 0m") && o.contains("queued"),
        "{o}"
    );
    assert!(
        o.contains("seg-1760271262000-00cc.ts.part") && o.contains("recording"),
        "{o}"
    );
    assert!(
        o.contains("3 segments (1 recording, 2 queued), 537.1 KiB of 1.0 MiB budget (52%)"),
        "{o}"
    );
    assert!(!o.contains(".uploader-stats"), "{o}");

    let json: serde_json::Value =
        serde_json::from_slice(&run(&s, &["lsram", "--json"], "").stdout).unwrap();
    let cam = &json["cameras"][0];
    assert_eq!(cam["camera"], "cam1");
    assert_eq!(cam["queued"], 2);
    assert_eq!(cam["recording"], 1);
    assert_eq!(cam["total_bytes"], 550_000);
    assert_eq!(cam["budget_bytes"], 1024 * 1024);
    assert_eq!(cam["segments"][2]["state"], "recording");
    assert_eq!(cam["segments"][0]["size_bytes"], 300_000);
    assert!(cam["segments"][0]["age_seconds"].as_u64().unwrap() >= 3 * 3600);
    assert_eq!(json["cameras"][1]["exists"], false);

    // Asks first; "n" (or end of input) deletes nothing.
    let out = run(&s, &["clean", "cam1"], "n\n");
    expect(&out, 0, "nothing deleted (answer y, or pass --yes)", "");
    assert!(text(&out.stdout).contains("Delete these 2 queued segments"));
    assert!(old.exists() && newer.exists());

    // --older-than picks only the old one, and "y" confirms.
    let out = run(&s, &["clean", "cam1", "--older-than", "1h"], "y\n");
    expect(
        &out,
        0,
        &format!(
            "cam1: deleted {} (293.0 KiB)\ndeleted 1 segments, 293.0 KiB\n",
            old.display()
        ),
        "",
    );
    assert!(!old.exists() && newer.exists() && part.exists());

    // --yes: every queued segment, never the one being recorded.
    let out = run(&s, &["clean", "all", "--yes"], "");
    expect(&out, 0, &format!("cam1: deleted {}", newer.display()), "");
    assert!(!newer.exists() && part.exists());
    expect(
        &run(&s, &["clean", "cam1", "--yes"], ""),
        0,
        "nothing to delete: no queued segments for cam1",
        "",
    );
}

#[test]
fn cameras_lists_urls_and_flags_invalid_files() {
    let s = setup();
    expect(
        &run(&s, &["cameras"], ""),
        0,
        "cam1         http://127.0.0.1:9/stream  60 s segments\n",
        "",
    );
    fs::write(s.conf.join("cameras/cam2.conf"), "CAMERA_URL=ftp://x\n").unwrap();
    let out = run(&s, &["cameras"], "");
    assert_eq!(out.status.code(), Some(78));
    assert!(
        text(&out.stdout).contains(&format!(
            "cam2         ✘ {}/cameras/cam2.conf:1: CAMERA_URL: `ftp://x` must start with http://",
            s.conf.display()
        )),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn status_without_a_bus_says_so_and_exits_1() {
    let s = setup();
    let out = run(&s, &["status"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot connect to the system bus at unix:path=")
            && text(&out.stderr).contains("(is systemd running?)"),
        "{}",
        text(&out.stderr)
    );
}

/// Runs the bash completion function for a command line ending in the word being completed.
fn complete(s: &Setup, words: &[&str]) -> Vec<String> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../packaging/completions/visdcam.bash"
    );
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{script}'; COMP_WORDS=({}); COMP_CWORD={}; _visdcam; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            quoted.join(" "),
            words.len() - 1
        ))
        .env("VISDCAM_CONFIG_DIR", &s.conf)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).lines().map(str::to_string).collect()
}

#[test]
fn bash_completion_knows_every_command_and_the_cameras() {
    let s = setup();
    let help = text(&run(&s, &["help"], "").stdout);
    let commands: Vec<String> = help
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    assert_eq!(commands.len(), 25, "{help}");
    let offered = complete(&s, &["visdcam", ""]);
    for c in &commands {
        assert!(offered.contains(c), "completion lacks {c}: {offered:?}");
    }
    assert_eq!(
        complete(&s, &["visdcam", "restart", ""]),
        ["cam1", "cam2", "all"]
    );
    assert_eq!(complete(&s, &["visdcam", "setdur", "c"]), ["cam1", "cam2"]);
    assert_eq!(complete(&s, &["visdcam", "preset", "cam1", "n"]), ["night"]);
    assert_eq!(complete(&s, &["visdcam", "fetch", "c"]), ["cam1", "cam2"]);
    assert_eq!(
        complete(&s, &["visdcam", "footage", "cam1", "ye"]),
        ["yesterday"]
    );
    assert_eq!(
        complete(&s, &["visdcam", "play", "cam1", "17:40", "--ex"]),
        ["--expires"]
    );
    assert_eq!(
        complete(&s, &["visdcam", "ramlogs", ""]),
        ["on", "off", "status"]
    );
    assert_eq!(complete(&s, &["visdcam", "migrate", "--d"]), ["--dry-run"]);
}

#[test]
fn preset_runs_daynight_apply_and_passes_on_its_status() {
    let s = setup();
    let log = s.conf.join("daynight.log");
    let fake = s.conf.join("daynight");
    fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\n[ \"$3\" = night ] || {{ echo 'no such preset' >&2; exit 78; }}\n",
            log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let with_fake = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_visdcam"))
            .args(args)
            .env("VISDCAM_CONFIG_DIR", &s.conf)
            .env("VISDCAM_DAYNIGHT", &fake)
            .output()
            .unwrap()
    };
    assert_eq!(
        with_fake(&["preset", "all", "night"]).status.code(),
        Some(0)
    );
    assert_eq!(
        with_fake(&["preset", "cam2", "night"]).status.code(),
        Some(0)
    );
    let out = with_fake(&["preset", "cam1", "dusk"]);
    assert_eq!(out.status.code(), Some(78));
    assert_eq!(text(&out.stderr), "no such preset\n");
    // An unknown camera never reaches daynight.
    assert_eq!(with_fake(&["preset", "cam9", "day"]).status.code(), Some(2));
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "apply all night\napply cam2 night\napply cam1 dusk\n"
    );
}
