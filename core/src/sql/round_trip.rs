//! Property tests of the parser and the printer together: printing any statement and parsing the
//! text gives the statement back with its secrets redacted, printing is stable, and no parse error
//! panics, points outside its statement or shows a secret.

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::strategy::Union;
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::lexer::{lex, Tok};
use super::*;
use crate::error::Error;
use crate::redact::{redact_uri, REDACTED};

fn s(x: &str) -> String {
    x.to_string()
}

// ---- generators ----

/// Any text, including quotes, unicode and comment markers.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![r"[a-z0-9 @*/_.-]{0,10}", r#"['"a-z -]{0,8}"#, any::<String>()]
}

/// A non-empty identifier, plain, reserved or odd.
fn ident() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => r"[a-z_][a-z0-9_$]{0,6}",
        1 => proptest::sample::select(vec!["from", "table", "if", "to", "as", "public", "latest"]).prop_map(s),
        2 => r#"[A-Za-z0-9 _"'.*$-]{1,8}"#,
        1 => any::<String>().prop_filter("identifiers are not empty", |s| !s.is_empty()),
    ]
}

fn uri() -> impl Strategy<Value = String> {
    let scheme = proptest::sample::select(vec!["nodelocal://1/", "s3://bucket/", "gs://b/", "https://user:pw@host/"]);
    let param = (
        proptest::sample::select(vec!["AWS_SECRET_ACCESS_KEY", "AWS_REGION", "azure_account_key", "AUTH"]),
        r"[a-z0-9%]{0,4}",
    )
        .prop_map(|(k, v)| format!("{k}={v}"));
    let structured = (scheme, r"[a-z0-9/_-]{0,8}", vec(param, 0..3)).prop_map(|(scheme, path, params)| {
        if params.is_empty() {
            format!("{scheme}{path}")
        } else {
            format!("{scheme}{path}?{}", params.join("&"))
        }
    });
    prop_oneof![3 => structured, 1 => text()]
}

fn uris() -> impl Strategy<Value = Vec<String>> {
    vec(uri(), 1..3)
}

fn table_name(star: bool) -> impl Strategy<Value = TableName> {
    let table = if star { prop_oneof![4 => ident(), 1 => Just(s("*"))].boxed() } else { ident().boxed() };
    (option::of(ident()), table).prop_map(|(database, table)| TableName { database, table })
}

fn targets() -> impl Strategy<Value = Targets> {
    prop_oneof![
        Just(Targets::Cluster),
        vec(ident(), 1..4).prop_map(Targets::Databases),
        vec(table_name(true), 1..4).prop_map(Targets::Tables),
    ]
}

fn subdir() -> impl Strategy<Value = Subdir> {
    prop_oneof![Just(Subdir::Latest), text().prop_map(Subdir::Path)]
}

fn as_of() -> impl Strategy<Value = Option<AsOf>> {
    option::of(prop_oneof![r"[0-9]{1,19}(\.[0-9]{1,10})?", text()].prop_map(AsOf))
}

fn secret() -> impl Strategy<Value = Option<Secret>> {
    option::of(text().prop_map(Secret))
}

fn secret_source() -> impl Strategy<Value = Option<SecretSource>> {
    option::of(prop_oneof![text().prop_map(SecretSource::Env), text().prop_map(SecretSource::File)])
}

fn backup_options() -> impl Strategy<Value = BackupStmtOptions> {
    (any::<bool>(), secret(), secret_source(), vec(uri(), 0..3), any::<bool>()).prop_map(
        |(revision_history, encryption_passphrase, from, kms, detached)| BackupStmtOptions {
            revision_history,
            // One or the other: the parser refuses both.
            encryption_passphrase_from: if encryption_passphrase.is_some() { None } else { from },
            encryption_passphrase,
            kms,
            detached,
        },
    )
}

fn source() -> impl Strategy<Value = BackupSource> {
    prop_oneof![
        (subdir(), uris()).prop_map(|(subdir, uris)| BackupSource { subdir: Some(subdir), layers: vec![uris] }),
        vec(uris(), 1..4).prop_map(|layers| BackupSource { subdir: None, layers }),
    ]
}

fn backup() -> impl Strategy<Value = Statement> {
    let destination = prop_oneof![
        uris().prop_map(BackupDestination::To),
        (option::of(subdir()), uris()).prop_map(|(subdir, uris)| BackupDestination::Into { subdir, uris }),
    ];
    (targets(), destination, as_of(), vec(uri(), 0..3), backup_options()).prop_map(
        |(targets, destination, as_of, incremental_from, options)| {
            Statement::Backup(BackupStmt { targets, destination, as_of, incremental_from, options })
        },
    )
}

fn restore() -> impl Strategy<Value = Statement> {
    let options = (option::of(text()), option::of(text()), secret(), vec(uri(), 0..3), any::<bool>(), any::<bool>())
        .prop_map(|(into_db, new_db_name, encryption_passphrase, kms, skip_missing_foreign_keys, detached)| {
            RestoreStmtOptions { into_db, new_db_name, encryption_passphrase, kms, skip_missing_foreign_keys, detached }
        });
    (targets(), source(), as_of(), options).prop_map(|(targets, source, as_of, options)| {
        Statement::Restore(RestoreStmt { targets, source, as_of, options })
    })
}

fn show_and_alter() -> impl Strategy<Value = Statement> {
    let show_options =
        (any::<bool>(), secret(), vec(uri(), 0..3)).prop_map(|(check_files, encryption_passphrase, kms)| {
            ShowBackupOptions { check_files, encryption_passphrase, kms }
        });
    let change = prop_oneof![
        (uris(), uris()).prop_map(|(new, old)| KeyChange::Kms { new, old }),
        (text(), text()).prop_map(|(new, old)| KeyChange::Passphrase { new: Secret(new), old: Secret(old) }),
    ];
    prop_oneof![
        (source(), show_options)
            .prop_map(|(source, options)| Statement::ShowBackup(ShowBackupStmt { source, options })),
        uris().prop_map(|collection| Statement::ShowBackups { collection }),
        (source(), change).prop_map(|(source, change)| Statement::AlterBackup(AlterBackupStmt { source, change })),
    ]
}

fn schedule() -> impl Strategy<Value = Statement> {
    let recurring = prop_oneof![text().prop_map(Recurrence::Cron), Just(Recurrence::Never)];
    let full = option::of(prop_oneof![text().prop_map(Recurrence::Cron), Just(Recurrence::Always)]);
    let options = vec((ident(), text()), 0..4).prop_map(|mut options| {
        let mut seen = Vec::new();
        options.retain(|(k, _)| {
            !seen.contains(k) && {
                seen.push(k.clone());
                true
            }
        });
        options
    });
    (any::<bool>(), option::of(text()), targets(), uris(), backup_options(), recurring, full, options).prop_map(
        |(if_not_exists, label, targets, uris, options, recurring, full_backup, schedule_options)| {
            let destination = BackupDestination::Into { subdir: None, uris };
            let backup = BackupStmt { targets, destination, as_of: None, incremental_from: vec![], options };
            Statement::CreateSchedule(CreateScheduleStmt {
                if_not_exists,
                label,
                backup,
                recurring,
                full_backup,
                schedule_options,
            })
        },
    )
}

fn simple() -> impl Strategy<Value = Statement> {
    let id = any::<u64>();
    Union::new(vec![
        Just(Statement::ShowSchedules).boxed(),
        Just(Statement::ShowJobs).boxed(),
        Just(Statement::ShowDatabases).boxed(),
        id.prop_map(Statement::PauseSchedule).boxed(),
        id.prop_map(Statement::ResumeSchedule).boxed(),
        id.prop_map(Statement::DropSchedule).boxed(),
        id.prop_map(Statement::ShowJob).boxed(),
        id.prop_map(Statement::PauseJob).boxed(),
        id.prop_map(Statement::ResumeJob).boxed(),
        id.prop_map(Statement::CancelJob).boxed(),
        (ident(), any::<bool>())
            .prop_map(|(name, if_not_exists)| Statement::CreateDatabase { name, if_not_exists })
            .boxed(),
        (table_name(false), any::<bool>())
            .prop_map(|(name, if_not_exists)| Statement::CreateTable { name, if_not_exists })
            .boxed(),
        (ident(), any::<bool>(), any::<bool>())
            .prop_map(|(name, if_exists, cascade)| Statement::DropDatabase { name, if_exists, cascade })
            .boxed(),
        (table_name(false), any::<bool>())
            .prop_map(|(name, if_exists)| Statement::DropTable { name, if_exists })
            .boxed(),
        option::of(ident()).prop_map(|database| Statement::ShowTables { database }).boxed(),
    ])
}

fn alter_schedule() -> BoxedStrategy<Statement> {
    let option = prop_oneof![
        any::<bool>().prop_map(ScheduleBackupOption::RevisionHistory),
        text().prop_map(|p| ScheduleBackupOption::EncryptionPassphrase(Secret(p))),
        (any::<bool>(), text()).prop_map(|(env, value)| ScheduleBackupOption::EncryptionPassphraseFrom { env, value }),
        uris().prop_map(ScheduleBackupOption::Kms),
    ]
    .boxed();
    let command = prop_oneof![
        text().prop_map(AlterScheduleCmd::SetLabel),
        uris().prop_map(AlterScheduleCmd::SetInto),
        option.prop_map(AlterScheduleCmd::SetWith),
        text().prop_map(AlterScheduleCmd::SetRecurring),
        prop_oneof![text().prop_map(Recurrence::Cron), Just(Recurrence::Always)]
            .prop_map(AlterScheduleCmd::SetFullBackup),
        (ident(), text()).prop_map(|(k, v)| AlterScheduleCmd::SetScheduleOption(k, v)),
        any::<bool>().prop_map(|full| AlterScheduleCmd::ExecuteImmediately { full }),
    ]
    .boxed();
    let details = proptest::sample::select(vec![BackupDetails::Files, BackupDetails::Ranges, BackupDetails::Schemas]);
    let show_options =
        (any::<bool>(), secret(), vec(uri(), 0..3)).prop_map(|(check_files, encryption_passphrase, kms)| {
            ShowBackupOptions { check_files, encryption_passphrase, kms }
        });
    prop_oneof![
        (any::<u64>(), vec(command, 1..4))
            .prop_map(|(id, commands)| Statement::AlterBackupSchedule(AlterBackupScheduleStmt { id, commands })),
        any::<u64>().prop_map(Statement::ShowSchedule),
        (details, source(), show_options).prop_map(|(details, source, options)| Statement::ShowBackupDetails {
            details,
            show: ShowBackupStmt { source, options }
        }),
    ]
    .boxed()
}

fn statement() -> impl Strategy<Value = Statement> {
    prop_oneof![
        2 => backup(),
        2 => restore(),
        2 => show_and_alter(),
        2 => schedule(),
        1 => simple(),
        1 => alter_schedule()
    ]
}

// ---- the expected result of a round trip: secrets redacted ----

fn redact_all(uris: Vec<String>) -> Vec<String> {
    uris.iter().map(|u| redact_uri(u)).collect()
}

fn redact_secret(secret: Option<Secret>) -> Option<Secret> {
    secret.map(|_| Secret(s(REDACTED)))
}

fn redact_backup(b: BackupStmt) -> BackupStmt {
    let destination = match b.destination {
        BackupDestination::To(uris) => BackupDestination::To(redact_all(uris)),
        BackupDestination::Into { subdir, uris } => BackupDestination::Into { subdir, uris: redact_all(uris) },
    };
    let options = BackupStmtOptions {
        encryption_passphrase: redact_secret(b.options.encryption_passphrase),
        kms: redact_all(b.options.kms),
        ..b.options
    };
    BackupStmt { destination, incremental_from: redact_all(b.incremental_from), options, ..b }
}

fn redact_source(source: BackupSource) -> BackupSource {
    BackupSource { layers: source.layers.into_iter().map(redact_all).collect(), ..source }
}

/// What parsing the printed statement must give: every URI through `redact_uri`, every
/// passphrase `redacted`.
fn redacted(stmt: Statement) -> Statement {
    match stmt {
        Statement::Backup(b) => Statement::Backup(redact_backup(b)),
        Statement::Restore(r) => Statement::Restore(RestoreStmt {
            source: redact_source(r.source),
            options: RestoreStmtOptions {
                encryption_passphrase: redact_secret(r.options.encryption_passphrase),
                kms: redact_all(r.options.kms),
                ..r.options
            },
            ..r
        }),
        Statement::ShowBackup(sb) => Statement::ShowBackup(ShowBackupStmt {
            source: redact_source(sb.source),
            options: ShowBackupOptions {
                encryption_passphrase: redact_secret(sb.options.encryption_passphrase),
                kms: redact_all(sb.options.kms),
                ..sb.options
            },
        }),
        Statement::ShowBackups { collection } => Statement::ShowBackups { collection: redact_all(collection) },
        Statement::AlterBackup(a) => Statement::AlterBackup(AlterBackupStmt {
            source: redact_source(a.source),
            change: match a.change {
                KeyChange::Kms { new, old } => KeyChange::Kms { new: redact_all(new), old: redact_all(old) },
                KeyChange::Passphrase { .. } => {
                    KeyChange::Passphrase { new: Secret(s(REDACTED)), old: Secret(s(REDACTED)) }
                }
            },
        }),
        Statement::CreateSchedule(c) => {
            Statement::CreateSchedule(CreateScheduleStmt { backup: redact_backup(c.backup), ..c })
        }
        Statement::ShowBackupDetails { details, show } => Statement::ShowBackupDetails {
            details,
            show: ShowBackupStmt {
                source: redact_source(show.source),
                options: ShowBackupOptions {
                    encryption_passphrase: redact_secret(show.options.encryption_passphrase),
                    kms: redact_all(show.options.kms),
                    ..show.options
                },
            },
        },
        Statement::AlterBackupSchedule(a) => Statement::AlterBackupSchedule(AlterBackupScheduleStmt {
            commands: a
                .commands
                .into_iter()
                .map(|c| match c {
                    AlterScheduleCmd::SetInto(uris) => AlterScheduleCmd::SetInto(redact_all(uris)),
                    AlterScheduleCmd::SetWith(ScheduleBackupOption::Kms(uris)) => {
                        AlterScheduleCmd::SetWith(ScheduleBackupOption::Kms(redact_all(uris)))
                    }
                    AlterScheduleCmd::SetWith(ScheduleBackupOption::EncryptionPassphrase(p)) if !p.0.is_empty() => {
                        AlterScheduleCmd::SetWith(ScheduleBackupOption::EncryptionPassphrase(Secret(s(REDACTED))))
                    }
                    other => other,
                })
                .collect(),
            ..a
        }),
        other => other,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn display_then_parse_round_trips(stmt in statement()) {
        let sql = stmt.to_string();
        prop_assert_eq!(parse(&sql), Ok(redacted(stmt)), "{}", sql);
    }

    #[test]
    fn display_is_stable(stmt in statement()) {
        let sql = stmt.to_string();
        let again = parse(&sql).map(|s| s.to_string());
        prop_assert_eq!(again, Ok(sql));
    }

    #[test]
    fn parse_never_panics_and_points_inside(
        sql in prop_oneof![any::<String>(), statement().prop_map(|s| s.to_string())],
        cut in any::<prop::sample::Index>(),
    ) {
        let cut = sql.char_indices().nth(cut.index(sql.chars().count() + 1)).map_or(sql.len(), |(i, _)| i);
        for input in [sql.as_str(), &sql[..cut]] {
            if let Err(e) = parse(input) {
                let Error::Parse { statement, position, .. } = &e else {
                    return Err(TestCaseError::fail(format!("not a parse error: {e:?}")));
                };
                prop_assert!(*position <= statement.len() && statement.is_char_boundary(*position), "{:?}", e);
                let _ = e.to_string();
            }
        }
    }

    /// Put real secrets in a printed statement, damage it at a token boundary, and check that
    /// the error shows none of them.
    #[test]
    fn errors_never_show_secrets(
        stmt in statement(),
        at in any::<prop::sample::Index>(),
        mutation in 0..4usize,
        garbage in proptest::sample::select(
            vec!["FOO", ",", "(", ")", "=", ";", "@", "'", "\"", "--", "1.5", "'junk'"],
        ),
    ) {
        let sql = stmt.to_string().replace(REDACTED, "S3CRETpw");
        let tokens = lex(&sql);
        let i = at.index(tokens.len());
        let (start, end) = (tokens[i].start, tokens[i].end);
        let damaged = match mutation {
            0 => format!("{} {garbage} {}", &sql[..start], &sql[start..]),
            1 => format!("{}{}", &sql[..start], &sql[end..]),
            2 => sql[..start].to_string(),
            _ if tokens[i].tok == Tok::Eof => format!("{sql} {garbage}"),
            _ => format!("{} {garbage} {}", &sql[..end], &sql[end..]),
        };
        if let Err(e) = parse(&damaged) {
            let shown = e.to_string();
            prop_assert!(!shown.contains("S3CRETpw"), "{}\n=> {}", damaged, shown);
        }
    }
}
