use std::collections::HashMap;

use clap::Parser as _;

use super::*;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

fn toml(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, Path::new("test.toml"))
}

#[test]
fn default_is_spec_default_and_valid() {
    let c = Config::default();
    c.validate().unwrap();
    assert_eq!(c.http.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.media.ip, IpAddr::from([127, 0, 0, 1]));
    assert_eq!((c.media.port_min, c.media.port_max), (20000, 29999));
    assert_eq!(c.engine.backend, BackendKind::Uring);
    assert_eq!(c.store.path, Path::new("earshot.db"));
    assert_eq!(
        c.supervision.answer_timeout().unwrap(),
        AnswerTimeout::DEFAULT
    );
    assert_eq!(toml("").unwrap(), c);
    let e = c.engine_config();
    assert_eq!(e.workers, vec![WorkerConfig { core: None }]);
    assert_eq!(e.media_timeout, Duration::from_secs(60));
    assert_eq!(e.silent_timeout, Duration::from_secs(3600));
    assert_eq!(e.telephone_event_pt, 101);
}

#[test]
fn full_file() {
    let c = toml(
        r#"
            [http]
            listen = "0.0.0.0:9000"
            header_read_timeout_secs = 5
            body_timeout_secs = 6
            request_timeout_secs = 7
            max_connections = 100
            [media]
            ip = "::1"
            port_min = 30000
            port_max = 30099
            timeout_secs = 5
            silent_timeout_secs = 600
            telephone_event_pt = 96
            max_supervisors_per_call = 2
            agent_beep = false
            max_calls = 50
            dtmf = { listen = "1", whisper = "2", barge = "3", stop = "*" }
            [engine]
            backend = "uring"
            workers = 2
            cores = [0, 1]
            [store]
            path = "/var/lib/earshot/earshot.db"
            [supervision]
            answer_timeout_secs = 45
            "#,
    )
    .unwrap();
    c.validate().unwrap();
    assert_eq!(c.media.ip, "::1".parse::<IpAddr>().unwrap());
    assert_eq!(c.media.dtmf.action('*'), Some(DtmfAction::Stop));
    assert_eq!(
        c.media.dtmf.action('2'),
        Some(DtmfAction::Mode(Mode::Whisper))
    );
    assert_eq!(c.media.dtmf.action('4'), None);
    let e = c.engine_config();
    assert_eq!(
        e.workers,
        vec![
            WorkerConfig { core: Some(0) },
            WorkerConfig { core: Some(1) }
        ]
    );
    assert_eq!((e.port_min, e.port_max, e.max_calls), (30000, 30099, 50));
    assert_eq!(
        (e.media_timeout, e.silent_timeout),
        (Duration::from_secs(5), Duration::from_secs(600))
    );
    assert_eq!(c.store.path, Path::new("/var/lib/earshot/earshot.db"));
    assert_eq!(c.supervision.answer_timeout().unwrap().ms(), 45_000);
    assert_eq!(
        (
            c.http.header_read_timeout(),
            c.http.body_timeout(),
            c.http.request_timeout(),
            c.http.max_connections
        ),
        (
            std::time::Duration::from_secs(5),
            std::time::Duration::from_secs(6),
            std::time::Duration::from_secs(7),
            100
        )
    );
}

#[test]
fn unknown_keys_and_bad_values_name_the_key() {
    let err = toml("[media]\nprot_min = 3000\n").unwrap_err().to_string();
    assert!(err.contains("prot_min") && err.contains("line 2"), "{err}");
    assert!(!err.contains('\n'), "{err}");
    let err = toml("[nope]\n").unwrap_err().to_string();
    assert!(err.contains("nope"), "{err}");
    let err = toml("[media.dtmf]\nlisen = \"4\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("lisen"), "{err}");
    assert_eq!(
        toml("[engine]\nbackend = \"afxdp\"\ninterface = \"eth0\"\n")
            .unwrap()
            .engine
            .backend,
        BackendKind::AfXdp
    );
    let err = toml("[engine]\nbackend = \"xdp\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("afxdp") && err.contains("uring"), "{err}");
    let err = toml("[engine]\nbackend = \"dpdk\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown backend"), "{err}");
    let err = toml("[media]\nport_max = 70000\n").unwrap_err().to_string();
    assert!(err.contains("70000"), "{err}");
    let err = toml("[media\n").unwrap_err().to_string();
    assert!(err.contains("line 1"), "{err}");
}

#[test]
fn validation() {
    let check = |f: &dyn Fn(&mut Config), key: &str| {
        let mut c = Config::default();
        f(&mut c);
        match c.validate() {
            Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key),
            other => panic!("{key}: {other:?}"),
        }
    };
    check(&|c| c.media.port_min = 1000, "media.port_min");
    check(
        &|c| (c.media.port_min, c.media.port_max) = (30000, 20000),
        "media.port_min",
    );
    check(
        &|c| (c.media.port_min, c.media.port_max) = (30000, 30001),
        "media.port_max",
    );
    check(&|c| c.media.ip = "0.0.0.0".parse().unwrap(), "media.ip");
    check(&|c| c.media.timeout_secs = 0, "media.timeout_secs");
    check(
        &|c| c.media.silent_timeout_secs = 59,
        "media.silent_timeout_secs",
    );
    check(
        &|c| (c.media.timeout_secs, c.media.silent_timeout_secs) = (120, 90),
        "media.silent_timeout_secs",
    );
    check(
        &|c| c.media.telephone_event_pt = 8,
        "media.telephone_event_pt",
    );
    check(
        &|c| c.media.max_supervisors_per_call = MAX_SUPERVISORS + 1,
        "media.max_supervisors_per_call",
    );
    check(
        &|c| c.media.max_supervisors_per_call = 0,
        "media.max_supervisors_per_call",
    );
    check(&|c| c.media.max_calls = 0, "media.max_calls");
    check(&|c| c.media.dtmf.stop = 'x', "media.dtmf");
    check(&|c| c.media.dtmf.stop = '4', "media.dtmf");
    check(&|c| c.engine.workers = 0, "engine.workers");
    check(
        &|c| c.http.header_read_timeout_secs = 0,
        "http.header_read_timeout_secs",
    );
    check(
        &|c| c.http.body_timeout_secs = 3601,
        "http.body_timeout_secs",
    );
    check(
        &|c| c.http.request_timeout_secs = 0,
        "http.request_timeout_secs",
    );
    check(&|c| c.http.max_connections = 0, "http.max_connections");
    check(&|c| c.store.path = PathBuf::new(), "store.path");
    check(
        &|c| c.supervision.answer_timeout_secs = 0,
        "supervision.answer_timeout_secs",
    );
    check(
        &|c| c.supervision.answer_timeout_secs = 601,
        "supervision.answer_timeout_secs",
    );
    check(
        &|c| c.supervision.answer_timeout_secs = u64::MAX,
        "supervision.answer_timeout_secs",
    );
    check(&|c| c.engine.cores = Some(vec![1, 2]), "engine.cores");
    check(
        &|c| {
            c.engine.workers = 2;
            c.engine.cores = Some(vec![3, 3]);
        },
        "engine.cores",
    );
    let mut c = Config::default();
    (c.media.port_min, c.media.port_max) = (30000, 30002);
    c.validate().unwrap();
    (c.media.timeout_secs, c.media.silent_timeout_secs) = (60, 60);
    c.validate().unwrap();
}

#[test]
fn precedence_file_then_env_then_cli() {
    let dir = std::env::temp_dir().join(format!("earshot-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("earshot.toml");
    std::fs::write(
        &path,
        "[media]\nport_min = 21000\nport_max = 21999\nip = \"127.0.0.2\"\n[engine]\nworkers = 3\n",
    )
    .unwrap();

    let file_only = Config::load(Some(&path), env(&[]), &Overrides::default()).unwrap();
    assert_eq!(
        (file_only.media.port_min, file_only.media.port_max),
        (21000, 21999)
    );
    assert_eq!(file_only.engine.workers, 3);

    let environment = env(&[
        ("EARSHOT_PORT_MIN", "22000"),
        ("EARSHOT_PORT_MAX", "22999"),
        ("EARSHOT_WORKERS", "2"),
        ("EARSHOT_CORES", "0, 1"),
        ("EARSHOT_HTTP_LISTEN", "127.0.0.1:0"),
        ("EARSHOT_BACKEND", "uring"),
        ("EARSHOT_DB", "/tmp/from-env.db"),
        ("EARSHOT_HTTP_HEADER_READ_TIMEOUT_SECS", "3"),
        ("EARSHOT_HTTP_MAX_CONNECTIONS", "50"),
    ]);
    let cli = Cli::try_parse_from([
        "earshotd",
        "--port-max",
        "22500",
        "--media-ip",
        "127.0.0.3",
        "--http-max-connections",
        "60",
        "--http-body-timeout-secs",
        "4",
    ])
    .unwrap();
    let c = Config::load(Some(&path), environment, &cli.overrides).unwrap();
    assert_eq!(c.media.port_min, 22000, "env over file");
    assert_eq!(c.media.port_max, 22500, "cli over env");
    assert_eq!(
        c.media.ip,
        "127.0.0.3".parse::<IpAddr>().unwrap(),
        "cli over file"
    );
    assert_eq!(c.engine.workers, 2);
    assert_eq!(c.engine.cores, Some(vec![0, 1]));
    assert_eq!(c.http.listen.port(), 0);
    assert_eq!(c.http.header_read_timeout_secs, 3, "env over default");
    assert_eq!(c.http.max_connections, 60, "cli over env");
    assert_eq!(c.http.body_timeout_secs, 4);
    assert_eq!(c.http.request_timeout_secs, 30);
    assert_eq!(c.store.path, Path::new("/tmp/from-env.db"));
    let cli = Cli::try_parse_from(["earshotd", "--db", ":memory:"]).unwrap();
    let c = Config::load(
        Some(&path),
        env(&[("EARSHOT_DB", "/tmp/from-env.db")]),
        &cli.overrides,
    )
    .unwrap();
    assert_eq!(c.store.path, Path::new(":memory:"), "cli over env");
    let silent = |env_value: &str, args: &[&str]| {
        let cli = Cli::try_parse_from([&["earshotd"], args].concat()).unwrap();
        Config::load(
            Some(&path),
            env(&[("EARSHOT_SILENT_TIMEOUT_SECS", env_value)]),
            &cli.overrides,
        )
        .map(|c| c.media.silent_timeout_secs)
    };
    assert_eq!(silent("900", &[]).unwrap(), 900, "env over the default");
    assert_eq!(
        silent("900", &["--silent-timeout-secs", "7200"]).unwrap(),
        7200,
        "cli over env"
    );
    let err = silent("30", &[]).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Invalid {
                key: "media.silent_timeout_secs",
                ..
            }
        ),
        "validated after the overrides: {err}"
    );
    assert!(silent("an hour", &[]).is_err());

    let err = Config::load(
        Some(&path),
        env(&[("EARSHOT_PORT_MIN", "lots")]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("EARSHOT_PORT_MIN"), "{err}");
    let err = Config::load(
        Some(&path),
        env(&[("EARSHOT_BACKEND", "dpdk")]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown backend"), "{err}");
    let auto = Config::load(
        Some(&path),
        env(&[("EARSHOT_BACKEND", "auto"), ("EARSHOT_INTERFACE", "eth9")]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(auto.engine.backend, BackendKind::Auto);
    assert_eq!(auto.engine.interface.as_deref(), Some("eth9"));
    let err = Config::load(
        Some(&dir.join("missing.toml")),
        env(&[]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    // Validation runs after every layer.
    let err = Config::load(
        Some(&path),
        env(&[]),
        &Overrides {
            port_max: Some(20000),
            ..Overrides::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Invalid {
                key: "media.port_min",
                ..
            }
        ),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cli_flags() {
    let cli = Cli::try_parse_from([
        "earshotd",
        "--config",
        "/etc/earshot.toml",
        "--http-listen",
        "[::1]:8081",
        "--cores",
        "1,2",
        "--workers",
        "2",
        "--backend",
        "uring",
        "--log-format",
        "json",
    ])
    .unwrap();
    assert_eq!(cli.config.as_deref(), Some(Path::new("/etc/earshot.toml")));
    assert_eq!(cli.overrides.cores, Some(vec![1, 2]));
    assert_eq!(
        cli.overrides.http_listen,
        Some("[::1]:8081".parse().unwrap())
    );
    assert_eq!(cli.log_format, LogFormat::Json);
    assert!(Cli::try_parse_from(["earshotd", "--backend", "dpdk"]).is_err());
    assert!(Cli::try_parse_from(["earshotd", "--port-min", "70000"]).is_err());
    let help = Cli::try_parse_from(["earshotd", "--help"])
        .unwrap_err()
        .to_string();
    assert!(
        help.contains("EARSHOT_PORT_MIN") && help.contains("--log-format"),
        "{help}"
    );
}

#[test]
fn ng_section_defaults_file_env_and_flags() {
    let c = Config::default();
    assert_eq!(c.ng.listen, Listen(Some("127.0.0.1:2223".parse().unwrap())));
    assert_eq!(c.ng.offerer, Offerer::Customer);
    assert!(c.ng.allows("127.0.0.9".parse().unwrap()));
    assert!(c.ng.allows("::1".parse().unwrap()));
    assert!(
        c.ng.allows("::ffff:127.0.0.1".parse().unwrap()),
        "a dual-stack socket's IPv4 source"
    );
    assert!(!c.ng.allows("10.0.0.1".parse().unwrap()));
    assert!(!c.ng.allows("::2".parse().unwrap()));

    let c = toml(
        r#"
            [ng]
            listen = "127.0.0.2:3333"
            allow = ["10.1.0.0/16", "192.0.2.7", "2001:db8::/32"]
            offerer = "agent"
            identity = { supervisor_id = "sup-ng", registered_number = "+33612345678" }
        "#,
    )
    .unwrap();
    c.validate().unwrap();
    assert_eq!(c.ng.listen.0, Some("127.0.0.2:3333".parse().unwrap()));
    assert!(c.ng.allows("10.1.255.3".parse().unwrap()));
    assert!(!c.ng.allows("10.2.0.1".parse().unwrap()));
    assert!(c.ng.allows("192.0.2.7".parse().unwrap()));
    assert!(!c.ng.allows("192.0.2.8".parse().unwrap()));
    assert!(c.ng.allows("2001:db8:1::5".parse().unwrap()));
    assert!(
        !c.ng.allows("127.0.0.1".parse().unwrap()),
        "replaced, not added"
    );
    assert_eq!(c.ng.offerer.party(), crate::domain::call::Party::Agent);
    assert_eq!(c.ng.identity.supervisor_id.as_deref(), Some("sup-ng"));
    // The effective configuration round-trips (it is logged as TOML).
    assert_eq!(toml(&toml::to_string(&c).unwrap()).unwrap(), c);

    let off = toml("[ng]\nlisten = \"\"\n").unwrap();
    assert_eq!(off.ng.listen, Listen(None));
    off.validate().unwrap();
    assert_eq!(toml(&toml::to_string(&off).unwrap()).unwrap(), off);

    // Environment over the file, flags over the environment; empty turns NG off.
    let environment = env(&[
        ("EARSHOT_NG_LISTEN", "127.0.0.1:0"),
        ("EARSHOT_NG_ALLOW", "10.0.0.0/8, ::1"),
        ("EARSHOT_NG_OFFERER", "agent"),
    ]);
    let c = Config::load(None, environment, &Overrides::default()).unwrap();
    assert_eq!(c.ng.listen.0.unwrap().port(), 0);
    assert!(c.ng.allows("10.9.9.9".parse().unwrap()));
    assert_eq!(c.ng.offerer, Offerer::Agent);
    let c = Config::load(
        None,
        env(&[("EARSHOT_NG_LISTEN", "")]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(c.ng.listen, Listen(None), "empty: off");
    let cli = Cli::try_parse_from([
        "earshotd",
        "--ng-listen",
        "",
        "--ng-allow",
        "192.0.2.0/24,198.51.100.1",
        "--ng-offerer",
        "customer",
    ])
    .unwrap();
    let c = Config::load(
        None,
        env(&[
            ("EARSHOT_NG_LISTEN", "127.0.0.1:5000"),
            ("EARSHOT_NG_OFFERER", "agent"),
        ]),
        &cli.overrides,
    )
    .unwrap();
    assert_eq!(c.ng.listen, Listen(None), "cli over env");
    assert_eq!(c.ng.offerer, Offerer::Customer, "cli over env");
    assert!(c.ng.allows("198.51.100.1".parse().unwrap()));
    assert!(!c.ng.allows("127.0.0.1".parse().unwrap()));
}

#[test]
fn ng_section_bad_values_are_clear_errors() {
    for (text, needle) in [
        ("[ng]\nlisten = \"nowhere\"\n", "expected IP:PORT"),
        (
            "[ng]\nallow = [\"10.0.0.0/33\"]\n",
            "longer than the address",
        ),
        ("[ng]\nallow = [\"ten\"]\n", "expected an address"),
        ("[ng]\nofferer = \"caller\"\n", "unknown variant"),
        ("[ng]\nport = 2223\n", "unknown field"),
    ] {
        let err = toml(text).unwrap_err().to_string();
        assert!(err.contains(needle), "{text}: {err}");
    }
    for (text, key) in [
        ("[ng]\nlisten = \"0.0.0.0:2223\"\n", "ng.listen"),
        ("[ng]\nallow = []\n", "ng.allow"),
        (
            "[ng.identity]\nsupervisor_id = \"a b\"\n",
            "ng.identity.supervisor_id",
        ),
        (
            "[ng.identity]\nregistered_number = \"call me\"\n",
            "ng.identity.registered_number",
        ),
    ] {
        let err = toml(text).unwrap().validate().unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { key: k, .. } if *k == key),
            "{text}: {err}"
        );
    }
    // Off needs no allow-list.
    toml("[ng]\nlisten = \"\"\nallow = []\n")
        .unwrap()
        .validate()
        .unwrap();
    let err = Config::load(
        None,
        env(&[("EARSHOT_NG_ALLOW", "10.0.0.0/8,x")]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("EARSHOT_NG_ALLOW"), "{err}");
    assert!(Cli::try_parse_from(["earshotd", "--ng-offerer", "boss"]).is_err());
}
