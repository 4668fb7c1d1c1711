#!/usr/bin/env python3
"""Seeds a TimeTrack-like database (the app Driveback's first users back up): users, timeEntries,
userGoals, feedback, feedbackVotes, dayReflections. Deterministic for a given --entries.

Usage: seed.py --uri URI --db NAME [--entries 200000] [--drop]
"""
import argparse
import datetime as dt
import random

import pymongo
from bson import ObjectId


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uri", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--entries", type=int, default=200_000)
    ap.add_argument("--drop", action="store_true")
    args = ap.parse_args()

    rnd = random.Random(42)
    client = pymongo.MongoClient(args.uri, directConnection=True)
    db = client[args.db]
    if args.drop:
        client.drop_database(args.db)

    users_n = max(10, args.entries // 200)
    base = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    projects = ["Website", "Mobile app", "Research", "Support", "Admin", "Marketing", "Infra"]
    tags = ["deep-work", "meeting", "review", "bug", "planning", "call", "writing"]

    users = []
    for i in range(users_n):
        users.append({
            "_id": ObjectId.from_datetime(base + dt.timedelta(minutes=i)),
            "email": f"user{i}@example.com",
            "name": f"User {i}",
            "timezone": rnd.choice(["Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC"]),
            "createdAt": base + dt.timedelta(days=rnd.randint(0, 300)),
            "settings": {"weekStart": rnd.choice([0, 1]), "dailyGoalMinutes": rnd.choice([240, 360, 480])},
        })
    db.users.insert_many(users)
    db.users.create_index("email", unique=True)
    ids = [u["_id"] for u in users]

    batch = []
    for i in range(args.entries):
        start = base + dt.timedelta(minutes=rnd.randint(0, 60 * 24 * 365))
        minutes = rnd.randint(5, 240)
        batch.append({
            "userId": rnd.choice(ids),
            "project": rnd.choice(projects),
            "description": f"Task {i % 997}: " + " ".join(rnd.choice(tags) for _ in range(rnd.randint(1, 4))),
            "start": start,
            "end": start + dt.timedelta(minutes=minutes),
            "durationMinutes": minutes,
            "billable": rnd.random() < 0.6,
            "tags": rnd.sample(tags, rnd.randint(0, 3)),
        })
        if len(batch) == 2000:
            db.timeEntries.insert_many(batch, ordered=False)
            batch = []
    if batch:
        db.timeEntries.insert_many(batch, ordered=False)
    db.timeEntries.create_index([("userId", 1), ("start", -1)])

    db.userGoals.insert_many([
        {"userId": u, "weeklyMinutes": rnd.choice([1200, 1800, 2400]), "project": rnd.choice(projects)} for u in ids
    ])
    feedback = [{"userId": rnd.choice(ids), "text": f"Idea {i}: " + rnd.choice(tags), "createdAt": base + dt.timedelta(hours=i)}
                for i in range(max(5, users_n // 2))]
    db.feedback.insert_many(feedback)
    db.feedbackVotes.insert_many([
        {"feedbackId": f["_id"], "userId": rnd.choice(ids), "vote": rnd.choice([1, -1])} for f in feedback for _ in range(3)
    ])
    db.dayReflections.insert_many([
        {"userId": rnd.choice(ids), "day": (base + dt.timedelta(days=i % 365)).date().isoformat(),
         "mood": rnd.randint(1, 5), "note": "Focused morning, meetings after lunch."}
        for i in range(max(10, args.entries // 20))
    ])
    counts = {c: db[c].estimated_document_count() for c in sorted(db.list_collection_names())}
    print(counts)


if __name__ == "__main__":
    main()
