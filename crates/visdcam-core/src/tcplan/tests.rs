//! Data-driven tests of the tc plan and of the parsers, on output captured from iproute2 6.1.

use super::*;

fn plan() -> Shaper {
    Shaper::new("eth0", 3_000_000, 8).unwrap()
}

fn lines(cmds: &[TcCommand]) -> Vec<String> {
    cmds.iter().map(|c| c.to_string()).collect()
}

#[test]
fn rates_parse_with_tc_units() {
    for (s, bits) in [
        ("3mbit", 3_000_000),
        ("3Mbit", 3_000_000),
        ("500kbit", 500_000),
        ("1gbit", 1_000_000_000),
        ("8000bit", 8_000),
        ("375kbps", 3_000_000),
        ("1mbps", 8_000_000),
        ("1000bps", 8_000),
        ("64000", 64_000),
        ("2.5mbit", 2_500_000),
    ] {
        assert_eq!(parse_rate(s), Ok(bits), "{s}");
    }
    for bad in ["", "mbit", "3 furlongs", "-3mbit", "10bit", "3mbitx"] {
        assert!(parse_rate(bad).is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn rates_format_back() {
    for (bps, s) in [
        (3_000_000, "3mbit"),
        (2_500_000, "2500kbit"),
        (10_000_000_000, "10gbit"),
        (64_123, "64123bit"),
    ] {
        assert_eq!(format_rate(bps), s);
        assert_eq!(parse_rate(s), Ok(bps));
    }
}

#[test]
fn apply_plan_fresh_with_fq_codel() {
    assert_eq!(
        lines(&plan().apply_commands(Leaf::FqCodel, false)),
        [
            "qdisc replace dev eth0 root handle 7664: htb default 10",
            "class add dev eth0 parent 7664: classid 7664:10 htb rate 10000000000bit burst 1250000 cburst 1250000 quantum 1514",
            "class add dev eth0 parent 7664: classid 7664:20 htb rate 3000000bit burst 3028 cburst 3028 quantum 1514",
            "qdisc add dev eth0 parent 7664:10 handle 7665: fq_codel",
            "qdisc add dev eth0 parent 7664:20 handle 7666: fq_codel target 6057us interval 101057us",
            "filter add dev eth0 parent 7664: protocol ip prio 1 u32 match ip tos 0x20 0xfc flowid 7664:20",
            "filter add dev eth0 parent 7664: protocol ipv6 prio 2 u32 match ip6 priority 0x20 0xfc flowid 7664:20",
        ]
    );
}

#[test]
fn apply_plan_again_deletes_ours_first_and_falls_back_to_fifo() {
    let l = lines(&plan().apply_commands(Leaf::Fifo, true));
    assert_eq!(l[0], "qdisc del dev eth0 root handle 7664:");
    assert_eq!(
        l[1],
        "qdisc replace dev eth0 root handle 7664: htb default 10"
    );
    assert_eq!(l[4], "qdisc add dev eth0 parent 7664:10 handle 7665: pfifo");
    assert_eq!(
        l[5],
        "qdisc add dev eth0 parent 7664:20 handle 7666: pfifo limit 62"
    );
    assert_eq!(l.len(), 8);
}

#[test]
fn the_mark_follows_the_configured_dscp() {
    for (dscp, tos) in [(8, "0x20"), (10, "0x28"), (46, "0xb8"), (1, "0x04")] {
        let p = Shaper::new("wlan0", 1_000_000, dscp).unwrap();
        let l = lines(&p.apply_commands(Leaf::FqCodel, false));
        assert!(
            l[5].contains(&format!("match ip tos {tos} 0xfc")),
            "{}",
            l[5]
        );
        assert!(
            l[6].contains(&format!("match ip6 priority {tos} 0xfc")),
            "{}",
            l[6]
        );
    }
}

#[test]
fn leaf_commands_are_recognised() {
    let cmds = plan().apply_commands(Leaf::FqCodel, true);
    let fq: Vec<usize> = (0..cmds.len())
        .filter(|&i| cmds[i].creates_leaf("fq_codel"))
        .collect();
    assert_eq!(fq, [4, 5]);
}

#[test]
fn bad_plans_are_refused() {
    assert_eq!(
        Shaper::new("eth0", 3_000_000, 0),
        Err(PlanError::BadDscp(0))
    );
    assert_eq!(
        Shaper::new("eth0", 3_000_000, 64),
        Err(PlanError::BadDscp(64))
    );
    assert_eq!(Shaper::new("eth0", 10, 8), Err(PlanError::BadRate(10)));
    for dev in [
        "",
        "a b",
        "eth0/1",
        "eth0:1",
        ".",
        "..",
        "sixteen-chars-xx",
        "eth0\nqdisc",
        // The kernel allows these; `tc -batch` would read a comment, a quoted word or an
        // escape: `dev eth0#` drops the rest of the line.
        "eth0#",
        "e\"th0",
        "e'th0",
        "eth0\\",
        "éth0",
    ] {
        assert_eq!(
            Shaper::new(dev, 3_000_000, 8),
            Err(PlanError::BadDevice(dev.to_string())),
            "{dev:?}"
        );
    }
    assert!(PlanError::BadDscp(0).to_string().contains("cs1"));
}

#[test]
fn sizes_scale_with_rate() {
    // (rate, burst bytes, fifo packets, codel target µs, interval µs)
    for (rate, burst, fifo, target, interval) in [
        (8_000, 3028, 16, 2_271_000, 2_366_000),
        (3_000_000, 3028, 62, 6057, 101_057),
        (20_000_000, 3028, 413, 5000, 100_000),
        (100_000_000, 12_500, 1000, 5000, 100_000),
        (10_000_000_000, 1_250_000, 1000, 5000, 100_000),
    ] {
        assert_eq!(burst_bytes(rate), burst, "burst at {rate}");
        assert_eq!(fifo_limit(rate), fifo, "fifo at {rate}");
        assert_eq!(codel_times_us(rate), (target, interval), "codel at {rate}");
    }
}

#[test]
fn dscp_names() {
    for (d, n) in [
        (8, "cs1"),
        (0, "cs0"),
        (34, "af41"),
        (10, "af11"),
        (46, "ef"),
        (5, "5"),
    ] {
        assert_eq!(dscp_name(d), n);
    }
}

const OURS: &str = "\
qdisc htb 7664: root refcnt 3 r2q 10 default 0x10 direct_packets_stat 0 direct_qlen 1000
 Sent 61848 bytes 56 pkt (dropped 0, overlimits 12 requeues 0) 
 backlog 0b 0p requeues 0
qdisc pfifo 7666: parent 7664:20 limit 62p
 Sent 1514 bytes 1 pkt (dropped 3, overlimits 0 requeues 0) 
 backlog 0b 0p requeues 0
qdisc pfifo 7665: parent 7664:10 limit 1000p
 Sent 60334 bytes 55 pkt (dropped 0, overlimits 0 requeues 0) 
 backlog 0b 0p requeues 0
qdisc ingress ffff: parent ffff:fff1 ----------------
 Sent 0 bytes 0 pkt (dropped 0, overlimits 0 requeues 0) 
 backlog 0b 0p requeues 0
";

const OUR_CLASSES: &str = "\
class htb 7664:10 root leaf 7665: prio 0 rate 10Gbit ceil 10Gbit burst 1250000b cburst 1250000b 
 Sent 60334 bytes 55 pkt (dropped 0, overlimits 0 requeues 0) 
 backlog 0b 0p requeues 0
 lended: 55 borrowed: 0 giants: 0
 tokens: 15 ctokens: 15

class htb 7664:20 root leaf 7666: prio 0 rate 3Mbit ceil 3Mbit burst 3027b cburst 3027b 
 Sent 1514 bytes 1 pkt (dropped 3, overlimits 12 requeues 0) 
 backlog 0b 0p requeues 0
 lended: 1 borrowed: 0 giants: 0
 tokens: 126156 ctokens: 126156

class fq_codel 7667:2a5 parent 7667: 
";

#[test]
fn qdisc_lines_parse() {
    let q = parse_qdiscs(OURS).unwrap();
    assert_eq!(q.len(), 4);
    assert_eq!(q[0].kind, "htb");
    assert_eq!(q[0].handle, "7664:");
    assert_eq!(q[0].parent, None);
    assert_eq!(q[0].options[..4], ["r2q", "10", "default", "0x10"]);
    assert_eq!(
        q[0].counters,
        Some(Counters {
            bytes: 61848,
            packets: 56,
            drops: 0,
            overlimits: 12,
            requeues: 0
        })
    );
    assert_eq!(q[1].parent.as_deref(), Some("7664:20"));
    assert_eq!(q[3].kind, "ingress");
    // Without -s there are no counters.
    let plain = parse_qdiscs("qdisc noqueue 0: root refcnt 2 \n").unwrap();
    assert_eq!(plain[0].counters, None);
    assert!(plain[0].options.is_empty());
    assert_eq!(parse_qdiscs("").unwrap(), []);
}

#[test]
fn garbage_is_a_parse_error() {
    for (text, line) in [
        ("hello world\n", 1),
        (" Sent 0 bytes\n", 1),
        ("qdisc htb\n", 1),
        ("qdisc noqueue 0: root\nqdisc htb 1 root\n", 2),
        ("qdisc htb 1: sideways\n", 1),
    ] {
        assert_eq!(parse_qdiscs(text).unwrap_err().line, line, "{text:?}");
    }
}

#[test]
fn class_lines_parse() {
    let c = parse_classes(OUR_CLASSES).unwrap();
    assert_eq!(c.len(), 3);
    assert_eq!(c[1].classid, "7664:20");
    assert_eq!(c[1].leaf.as_deref(), Some("7666:"));
    assert_eq!(c[1].rate.as_deref(), Some("3Mbit"));
    assert_eq!(c[1].counters.unwrap().drops, 3);
    assert_eq!(c[1].counters.unwrap().overlimits, 12);
    assert_eq!(c[2].parent.as_deref(), Some("7667:"));
    assert_eq!(c[2].counters, None);
}

fn root_of(text: &str) -> RootState {
    classify_root(&parse_qdiscs(text).unwrap())
}

#[test]
fn roots_are_classified() {
    let prior = |h: &str, k: &str, o: &[&str]| {
        RootState::Restorable(PriorRoot {
            handle: h.into(),
            kind: k.into(),
            options: o.iter().map(|s| s.to_string()).collect(),
        })
    };
    let default = |k: &str| RootState::KernelDefault { kind: k.into() };
    let foreign = |k: &str, h: &str| RootState::Foreign {
        kind: k.into(),
        handle: h.into(),
    };
    for (text, want) in [
        (OURS, RootState::Ours),
        ("qdisc noqueue 0: root refcnt 2 \n", default("noqueue")),
        (
            "qdisc mq 0: root \nqdisc fq_codel 0: parent :1 limit 10240p flows 1024\n",
            default("mq"),
        ),
        ("", default("noqueue")),
        (
            "qdisc tbf 8001: root refcnt 3 rate 20Mbit burst 32Kb lat 50ms \n",
            prior("8001:", "tbf", &["rate", "20Mbit", "burst", "32Kb", "lat", "50ms"]),
        ),
        (
            "qdisc pfifo 8003: root refcnt 3 limit 30p\n",
            prior("8003:", "pfifo", &["limit", "30"]),
        ),
        (
            "qdisc bfifo 8002: root refcnt 3 limit 30000b\n",
            prior("8002:", "bfifo", &["limit", "30000b"]),
        ),
        (
            "qdisc pfifo_fast 8004: root refcnt 3 bands 3 priomap 1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1\n",
            prior("8004:", "pfifo_fast", &[]),
        ),
        (
            "qdisc fq_codel 8005: root refcnt 2 limit 10240p flows 1024 quantum 1514 target 5ms \
             interval 100ms memory_limit 32Mb ecn drop_batch 64 \n",
            prior(
                "8005:",
                "fq_codel",
                &[
                    "limit", "10240", "flows", "1024", "quantum", "1514", "target", "5ms",
                    "interval", "100ms", "memory_limit", "32Mb", "ecn", "drop_batch", "64",
                ],
            ),
        ),
        (
            "qdisc htb 1: root refcnt 3 r2q 10 default 0 direct_packets_stat 0 direct_qlen 1000\n",
            foreign("htb", "1:"),
        ),
        (
            "qdisc tbf 8001: root refcnt 3 rate 20Mbit burst 32Kb lat 50ms \n\
             qdisc pfifo 10: parent 8001:1 limit 5p\n",
            foreign("tbf", "8001:"),
        ),
        // Someone else's htb with our major number is still not ours unless it is htb.
        ("qdisc tbf 7664: root refcnt 2 rate 1Mbit burst 4Kb lat 1ms\n", prior("7664:", "tbf", &["rate", "1Mbit", "burst", "4Kb", "lat", "1ms"])),
    ] {
        assert_eq!(root_of(text), want, "{text}");
    }
}

#[test]
fn prior_root_round_trips_through_the_state_file() {
    let RootState::Restorable(p) =
        root_of("qdisc tbf 8001: root refcnt 3 rate 20Mbit burst 32Kb lat 50ms \n")
    else {
        panic!("tbf should be restorable");
    };
    assert_eq!(p.to_line(), "8001: tbf rate 20Mbit burst 32Kb lat 50ms\n");
    assert_eq!(PriorRoot::from_line(&p.to_line()), Ok(p.clone()));
    assert_eq!(
        p.restore_command("veth0").to_string(),
        "qdisc replace dev veth0 root handle 8001: tbf rate 20Mbit burst 32Kb lat 50ms"
    );
    assert!(PriorRoot::from_line("").is_err());
    assert!(PriorRoot::from_line("8001: htb").is_err());
    assert!(PriorRoot::from_line("8001 tbf").is_err());
}

#[test]
fn restore_depends_on_what_is_there_now() {
    let p = PriorRoot::from_line("8001: tbf rate 20Mbit burst 32Kb lat 50ms").unwrap();
    let restore = "qdisc replace dev d root handle 8001: tbf rate 20Mbit burst 32Kb lat 50ms";
    let default = RootState::KernelDefault {
        kind: "noqueue".into(),
    };
    for (live, prior, want) in [
        (
            RootState::Ours,
            None,
            vec!["qdisc del dev d root handle 7664:"],
        ),
        (RootState::Ours, Some(&p), vec![restore]),
        (default.clone(), Some(&p), vec![restore]),
        (default, None, vec![]),
        (RootState::Restorable(p.clone()), Some(&p), vec![]),
        (
            RootState::Foreign {
                kind: "htb".into(),
                handle: "1:".into(),
            },
            Some(&p),
            vec![],
        ),
    ] {
        assert_eq!(
            lines(&restore_commands("d", &live, prior)),
            want,
            "{live:?}"
        );
    }
}

#[test]
fn batch_errors_name_the_line() {
    for (stderr, line, msg) in [
        (
            "Error: Specified qdisc kind is unknown.\nCommand failed -:4\n",
            Some(4),
            "Error: Specified qdisc kind is unknown.",
        ),
        (
            "Cannot find device \"nope0\"\nCommand failed -:1\n",
            Some(1),
            "Cannot find device \"nope0\"",
        ),
        (
            "RTNETLINK answers: Operation not permitted\n",
            None,
            "RTNETLINK answers: Operation not permitted",
        ),
    ] {
        assert_eq!(batch_failure(stderr), (line, msg.to_string()));
    }
    assert!(is_missing_kind("Error: Specified qdisc kind is unknown."));
    assert!(is_missing_kind(
        "RTNETLINK answers: No such file or directory"
    ));
    assert!(!is_missing_kind(
        "Error: Exclusivity flag on, cannot modify."
    ));
}

#[test]
fn status_shows_plan_leaf_and_counters() {
    let q = parse_qdiscs(OURS).unwrap();
    let c = parse_classes(OUR_CLASSES).unwrap();
    let live = live_state(&q, &c);
    assert_eq!(live.classes.len(), 2);
    let text = render_status(&plan(), &live, &plan().apply_commands(Leaf::Fifo, false));
    let want_lines = [
        "plan: dev eth0: traffic marked DSCP 8 (cs1, TOS 0x20/0xfc) goes to class 7664:20 capped at 3mbit; everything else goes to class 7664:10 (unshaped)",
        "state: installed on eth0 (root 7664: htb), leaf qdisc: pfifo (fallback: this kernel has no fq_codel)",
        "7664:10   unshaped      10Gbit          60334         55        0           0",
        "7664:20   uploads        3Mbit           1514          1        3          12",
        "  filter add dev eth0 parent 7664: protocol ip prio 1 u32 match ip tos 0x20 0xfc flowid 7664:20",
    ];
    for w in want_lines {
        assert!(text.lines().any(|l| l == w), "missing {w:?} in\n{text}");
    }
    // A different configured rate is pointed out.
    let faster = Shaper::new("eth0", 5_000_000, 8).unwrap();
    let text = render_status(&faster, &live, &[]);
    assert!(
        text.contains("installed cap is 3Mbit but the configured one is 5mbit"),
        "{text}"
    );
    // Not installed.
    let q = parse_qdiscs("qdisc noqueue 0: root refcnt 2\n").unwrap();
    let text = render_status(&plan(), &live_state(&q, &[]), &[]);
    assert!(
        text.contains("state: not installed on eth0 (root: kernel default noqueue)"),
        "{text}"
    );
}

#[test]
fn default_route_from_proc() {
    let v4 = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
wlan0\t00000000\t0102A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
";
    assert_eq!(default_route_v4(v4).as_deref(), Some("eth0"));
    let no_default = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n\
                      eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\n";
    assert_eq!(default_route_v4(no_default), None);
    // A route that is not up does not count.
    let down = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n\
                eth0\t00000000\t0101A8C0\t0002\t0\t0\t100\t00000000\n";
    assert_eq!(default_route_v4(down), None);
    assert_eq!(default_route_v4(""), None);

    let v6 = "\
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 wlan0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000064 00000001 00000000 00000003 eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth0
";
    assert_eq!(default_route_v6(v6).as_deref(), Some("eth0"));
    let only_reject = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n";
    assert_eq!(default_route_v6(only_reject), None);
}
