"""`plenary demo`: a sample organization for trying Plenary out: 3 groups, 40 members, one admin."""

from __future__ import annotations

import random
import secrets

from sqlalchemy import func, select

from app import security
from app.db import Database
from app.members.models import Group, GroupMembership, Member, Organization, Role, Status
from app.settings import Settings

ADMIN_EMAIL = "admin@example.org"
GROUPS = [("Riverside", "Members living by the river"), ("Old Town", "Members in the old town"),
          ("Board", "The elected board")]
FIRST = ["Amara", "Ben", "Chiara", "Dmitri", "Elif", "Farah", "Gustav", "Hana", "Ivo", "Jia", "Kofi", "Lena",
         "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tove"]
LAST = ["Okafor", "Schmidt", "Rossi", "Ivanova", "Yilmaz", "Haddad", "Lindqvist", "Sato", "Novak", "Chen"]


def fill_demo(settings: Settings, *, members: int = 40, seed: int = 7) -> int:
    db = Database(settings.database_url)
    rng = random.Random(seed)
    password = secrets.token_urlsafe(12)
    ctx = security.password_context(settings.password_hash_rounds, settings.password_hash_memory_kib)
    try:
        with db.begin() as s:
            if (s.scalar(select(func.count()).select_from(Member)) or 0) > 0:
                print("The database already has members; the demo only fills an empty one.")
                return 1
            if s.get(Organization, 1) is None:
                s.add(Organization(id=1, name="Riverside Community Association", time_zone="Europe/Berlin"))
            groups = [Group(name=n, description=d) for n, d in GROUPS]
            s.add_all(groups)
            admin = Member(email=ADMIN_EMAIL, name="Alex Admin", role=Role.ADMIN, status=Status.ACTIVE,
                           password_hash=security.hash_password(password, ctx))
            s.add(admin)
            people = []
            for i in range(members - 1):
                first, last = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
                people.append(Member(email=f"{first}.{last}{i}@example.org".lower(), name=f"{first} {last}",
                                     status=Status.ACTIVE if i % 5 else Status.INVITED))
            s.add_all(people)
            s.flush()
            s.add(GroupMembership(group_id=groups[2].id, member_id=admin.id))
            for i, m in enumerate(people):
                s.add(GroupMembership(group_id=groups[i % 2].id, member_id=m.id))
                if rng.random() < 0.12:
                    s.add(GroupMembership(group_id=groups[2].id, member_id=m.id))
    finally:
        db.dispose()
    print(f"Demo organization ready: {members} members in {len(GROUPS)} groups.\n"
          f"Sign in as {ADMIN_EMAIL} with the password: {password}")
    return 0
