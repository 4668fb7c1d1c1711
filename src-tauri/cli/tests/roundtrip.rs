//! Backup and restore of a database holding every BSON type, odd names, a near-16 MB document,
//! capped and validated collections, every index kind and a view: the restored data is
//! byte-identical per document, with equal indexes and options. Runs the real CLI against the
//! real server.

mod common;

use bson::{
    doc, oid::ObjectId, spec::BinarySubtype, Binary, Bson, DateTime, Decimal128,
    JavaScriptCodeWithScope, Regex, Timestamp,
};
use common::*;
use mongodb::{options::IndexOptions, IndexModel};

async fn seed_corpus(client: &mongodb::Client, db_name: &str) {
    let db = client.database(db_name);
    let bin = |subtype, bytes: &[u8]| {
        Bson::Binary(Binary {
            subtype,
            bytes: bytes.to_vec(),
        })
    };
    let mut deep = doc! { "leaf": "bottom" };
    for i in 0..90 {
        deep = doc! { "level": i, "next": deep };
    }
    let types = vec![
        doc! { "_id": 1, "double": 3.25_f64, "neg_zero": -0.0_f64, "nan": f64::NAN, "inf": f64::INFINITY },
        doc! { "_id": 2, "string": "naïve café ✓ 名前 🎉", "empty": "" },
        doc! { "_id": 3, "doc": { "a": 1, "b": { "c": [1, 2, { "d": null }] } }, "array": [1, "two", 3.0, [4], { "five": 5 }] },
        doc! { "_id": 4, "generic": bin(BinarySubtype::Generic, b"\x00\x01\x02\xff"), "uuid": bin(BinarySubtype::Uuid, &[7u8; 16]),
        "md5": bin(BinarySubtype::Md5, &[9u8; 16]), "old_binary": bin(BinarySubtype::BinaryOld, b"abc"), "user": bin(BinarySubtype::UserDefined(0x80), b"custom") },
        doc! { "_id": 5, "oid": ObjectId::parse_str("5f43a1b2c3d4e5f601234567").unwrap(), "bool_t": true, "bool_f": false },
        doc! { "_id": 6, "date": DateTime::from_millis(1_700_000_000_123), "pre1970": DateTime::from_millis(-14_182_940_000), "null": Bson::Null },
        doc! { "_id": 7, "regex": Regex { pattern: "^a.*z$".into(), options: "imsx".into() } },
        doc! { "_id": 8, "js": Bson::JavaScriptCode("function(){ return 1; }".into()),
        "js_scope": Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope { code: "x + 1".into(), scope: doc! { "x": 1 } }) },
        doc! { "_id": 9, "int32": i32::MIN, "int64": i64::MAX, "ts": Timestamp { time: 1_700_000_000, increment: 7 },
        "dec": Bson::Decimal128("1234567890.123456789".parse::<Decimal128>().unwrap()) },
        doc! { "_id": 10, "min": Bson::MinKey, "max": Bson::MaxKey },
        doc! { "_id": 11, "deep": deep },
        doc! { "_id": 12, "a.b": "dotted field", "$dollar": "dollar field", "nested": { "x.y": 1, "$z": 2 } },
        doc! { "_id": "string id" },
        doc! { "_id": ObjectId::new(), "kind": "object id" },
        doc! { "_id": { "compound": 1, "key": "k" } },
    ];
    db.collection("types")
        .insert_many(types)
        .await
        .expect("insert the BSON corpus");

    // A document just under the 16 MiB limit.
    // Random bytes: incompressible, so the backup file must carry all of them.
    let big: Vec<u8> = (0..16 * 1024 * 1024 - 4096)
        .map(|_| rand::random::<u8>())
        .collect();
    db.collection("big")
        .insert_one(
            doc! { "_id": 1, "blob": Binary { subtype: BinarySubtype::Generic, bytes: big } },
        )
        .await
        .unwrap();

    db.create_collection("empty").await.unwrap();
    db.collection("with.dots")
        .insert_many(vec![doc! { "_id": 1, "v": "dots" }, doc! { "_id": 2 }])
        .await
        .unwrap();
    db.collection("ünïcødé_名前")
        .insert_one(doc! { "_id": 1, "v": "unicode name" })
        .await
        .unwrap();

    db.create_collection("events_capped")
        .capped(true)
        .size(1 << 20)
        .max(1000)
        .await
        .unwrap();
    db.collection("events_capped")
        .insert_many((0..50).map(|i| doc! { "_id": i, "seq": i }))
        .await
        .unwrap();

    db.create_collection("validated")
        .validator(doc! { "$jsonSchema": { "bsonType": "object", "required": ["email"], "properties": { "email": { "bsonType": "string" } } } })
        .await
        .unwrap();
    db.collection("validated")
        .insert_one(doc! { "_id": 1, "email": "a@example.com" })
        .await
        .unwrap();

    let users = db.collection("users");
    users
        .insert_many((0..500).map(|i| doc! { "_id": i, "email": format!("user{i}@example.com"), "team": i % 7, "active": i % 3 != 0,
            "created": DateTime::from_millis(1_600_000_000_000 + i as i64 * 86_400_000) }))
        .await
        .unwrap();
    let idx = |keys, opts| IndexModel::builder().keys(keys).options(opts).build();
    users
        .create_indexes(vec![
            idx(
                doc! { "email": 1 },
                IndexOptions::builder()
                    .unique(true)
                    .name("email_unique".to_string())
                    .build(),
            ),
            idx(
                doc! { "team": 1, "created": -1 },
                IndexOptions::builder()
                    .name("team_created".to_string())
                    .build(),
            ),
            idx(
                doc! { "created": 1 },
                IndexOptions::builder()
                    .expire_after(std::time::Duration::from_secs(86_400 * 3650))
                    .name("created_ttl".to_string())
                    .build(),
            ),
            idx(
                doc! { "team": 1 },
                IndexOptions::builder()
                    .partial_filter_expression(doc! { "active": true })
                    .name("active_team".to_string())
                    .build(),
            ),
        ])
        .await
        .unwrap();
    db.create_collection("active_users")
        .view_on("users".to_string())
        .pipeline(vec![doc! { "$match": { "active": true } }])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn every_bson_type_round_trips_byte_for_byte() {
    let server = mongo();
    let client = server.client().await;
    let src = server.fresh_db("corpus");
    seed_corpus(&client, &src).await;
    let before = snapshot(&client, &src).await;

    let env = Env::new();
    let backup = env.backup(server.uri(), &src);
    assert_eq!(backup["status"], "complete");
    assert_eq!(
        backup["snapshot"], true,
        "a replica-set server gives a point-in-time backup"
    );
    let id = backup["id"].as_str().unwrap().to_string();

    // The list shows it, with the contract's fields.
    let list: serde_json::Value =
        serde_json::from_str(&env.ok(&["list", "--dest", &env.dest(), "--json"])).unwrap();
    let listed = &list["backups"][0];
    assert_eq!(listed["id"], id.as_str());
    assert_eq!(listed["database"], src.as_str());
    assert_eq!(listed["status"], "complete");
    assert_eq!(listed["documents"], backup["documents"]);
    assert!(
        listed["bytes"].as_u64().unwrap() > 16_000_000,
        "the near-16 MB document of random bytes is in the file"
    );

    let verify: serde_json::Value = serde_json::from_str(&env.ok(&[
        "verify",
        "--backup",
        &id,
        "--dest",
        &env.dest(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(verify["ok"], true);

    // Restore into another database: everything equal to the source.
    let target = server.fresh_db("restored");
    env.ok(&[
        "restore",
        "--backup",
        &id,
        "--dest",
        &env.dest(),
        "--mongo-uri",
        server.uri(),
        "--db",
        &target,
        "--yes",
        "--json",
    ]);
    let after = snapshot(&client, &target).await;
    assert_eq!(after.len(), before.len(), "same collections and views");
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a.0, b.0);
        assert_eq!(a.1, b.1, "kind of {}", b.0);
        assert_eq!(a.3, b.3, "indexes of {}", b.0);
        assert_eq!(a.4.len(), b.4.len(), "document count of {}", b.0);
        assert!(a.4 == b.4, "documents of {} are byte-identical", b.0);
        if server.is_test_server && b.0 == "events_capped" {
            // The test server drops a collection's options on renameCollection and has no
            // convertToCapped, so the cap cannot survive the swap there (MongoDB keeps it).
            continue;
        }
        assert_eq!(a.2, b.2, "options of {}", b.0);
    }
    assert!(
        after.iter().all(|c| !c.0.starts_with("driveback_staging_")),
        "no staging collection left"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_replaces_only_chosen_collections_and_keeps_others() {
    let server = mongo();
    let client = server.client().await;
    let db = server.fresh_db("subset");
    let d = client.database(&db);
    d.collection("a")
        .insert_many((0..10).map(|i| doc! { "_id": i, "v": "a-old" }))
        .await
        .unwrap();
    d.collection("b")
        .insert_many((0..10).map(|i| doc! { "_id": i, "v": "b-old" }))
        .await
        .unwrap();
    let env = Env::new();
    let id = env.backup(server.uri(), &db)["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Change both, and add a collection the backup does not know.
    d.collection::<bson::Document>("a")
        .update_many(doc! {}, doc! { "$set": { "v": "a-new" } })
        .await
        .unwrap();
    d.collection::<bson::Document>("b")
        .update_many(doc! {}, doc! { "$set": { "v": "b-new" } })
        .await
        .unwrap();
    d.collection("c")
        .insert_one(doc! { "_id": 1 })
        .await
        .unwrap();

    env.ok(&[
        "restore",
        "--backup",
        &id,
        "--dest",
        &env.dest(),
        "--mongo-uri",
        server.uri(),
        "--db",
        &db,
        "--collections",
        "a",
        "--yes",
    ]);
    let a: Vec<bson::Document> =
        futures_util::TryStreamExt::try_collect(d.collection("a").find(doc! {}).await.unwrap())
            .await
            .unwrap();
    let b: Vec<bson::Document> =
        futures_util::TryStreamExt::try_collect(d.collection("b").find(doc! {}).await.unwrap())
            .await
            .unwrap();
    assert!(
        a.iter().all(|x| x.get_str("v") == Ok("a-old")),
        "a is back to the backup"
    );
    assert!(
        b.iter().all(|x| x.get_str("v") == Ok("b-new")),
        "b was not chosen and keeps its data"
    );
    assert_eq!(
        d.collection::<bson::Document>("c")
            .count_documents(doc! {})
            .await
            .unwrap(),
        1,
        "collections outside the backup are left alone"
    );

    let out = env.cli(&[
        "restore",
        "--backup",
        &id,
        "--dest",
        &env.dest(),
        "--mongo-uri",
        server.uri(),
        "--db",
        &db,
        "--collections",
        "nope",
        "--yes",
    ]);
    assert!(one_error_line(&out).contains("no collection named \"nope\""));
}

/// The golden archives written by the real mongodump restore through Driveback, plain and gzip.
#[tokio::test(flavor = "multi_thread")]
async fn restores_plain_mongodump_archives() {
    let server = mongo();
    let client = server.client().await;
    let env = Env::new();
    for file in ["timetrack.archive", "timetrack.archive.gz"] {
        let target = server.fresh_db("golden");
        let path = testdata().join(file);
        env.ok(&[
            "restore",
            "--backup",
            path.to_str().unwrap(),
            "--mongo-uri",
            server.uri(),
            "--db",
            &target,
            "--yes",
        ]);
        for entry in std::fs::read_dir(testdata().join("expected")).unwrap() {
            let p = entry.unwrap().path();
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            let Some(coll) = name.strip_suffix(".ejson") else {
                continue;
            };
            let mut want: Vec<String> = std::fs::read_to_string(&p)
                .unwrap()
                .lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v.to_string()
                })
                .collect();
            let mut have: Vec<String> = raw_docs(&client, &target, coll)
                .await
                .into_iter()
                .map(|raw| {
                    let d = bson::RawDocumentBuf::from_bytes(raw)
                        .unwrap()
                        .to_document()
                        .unwrap();
                    Bson::Document(d).into_canonical_extjson().to_string()
                })
                .collect();
            want.sort();
            have.sort();
            assert_eq!(have, want, "{file}: documents of {coll}");
            let want_ix: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(
                    testdata()
                        .join("expected")
                        .join(format!("{coll}.indexes.json")),
                )
                .unwrap(),
            )
            .unwrap();
            assert_eq!(
                indexes(&client, &target, coll).await.len(),
                want_ix.as_array().unwrap().len(),
                "{file}: indexes of {coll}"
            );
        }
    }
}

/// `export` gives what standard tools read: the archive is the mongodump format, and ejson files
/// hold canonical Extended JSON.
#[tokio::test(flavor = "multi_thread")]
async fn export_writes_portable_archive_and_json() {
    let server = mongo();
    let client = server.client().await;
    let db = server.fresh_db("export");
    client
        .database(&db)
        .collection("notes")
        .insert_many((0..25).map(|i| doc! { "_id": i, "text": format!("note {i}") }))
        .await
        .unwrap();
    let env = Env::new();
    let id = env.backup(server.uri(), &db)["id"]
        .as_str()
        .unwrap()
        .to_string();

    let archive = env.dir.path().join("out.archive");
    env.ok(&[
        "export",
        "--backup",
        &id,
        "--dest",
        &env.dest(),
        "--out",
        archive.to_str().unwrap(),
        "--format",
        "archive",
    ]);
    let bytes = std::fs::read(&archive).unwrap();
    assert_eq!(
        &bytes[..4],
        &[0x6d, 0xe2, 0x99, 0x81],
        "mongodump archive magic"
    );
    // The exported archive restores like any mongodump archive.
    let target = server.fresh_db("export_back");
    env.ok(&[
        "restore",
        "--backup",
        archive.to_str().unwrap(),
        "--mongo-uri",
        server.uri(),
        "--db",
        &target,
        "--yes",
    ]);
    assert_eq!(
        raw_docs(&client, &target, "notes").await,
        raw_docs(&client, &db, "notes").await
    );

    let json_dir = env.dir.path().join("json");
    env.ok(&[
        "export",
        "--backup",
        &id,
        "--dest",
        &env.dest(),
        "--out",
        json_dir.to_str().unwrap(),
        "--format",
        "ejson",
    ]);
    let text = std::fs::read_to_string(json_dir.join("notes.ejson")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 25);
    let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert!(
        first["_id"]["$numberInt"].is_string(),
        "canonical Extended JSON: {first}"
    );
}
