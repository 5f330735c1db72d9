"""``jupyter llm tokens``: named API tokens for a shared ``jupyter llm serve`` (admins)."""

from __future__ import annotations

import argparse
import datetime as _dt

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``tokens`` command with ``add``, ``list`` and ``revoke``."""
    p = subparsers.add_parser(
        "tokens", help="issue, list and revoke named API tokens for a shared host",
        description="Named API tokens identify each user of a shared `jupyter llm serve`: "
                    "history, limits and statistics use the name. Tokens are stored hashed and "
                    "shown once. Works on this machine's data directory, or on the server named "
                    "by JUPYTER_LLM_URL (as an admin).")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="issue a token (shown once)")
    add.add_argument("name", help="the user the token identifies")
    add.add_argument("--role", default="student", help="a role of the policy (default student)")
    lst = sub.add_parser("list", help="list token names and roles")
    lst.add_argument("--json", action="store_true", help="print JSON")
    rev = sub.add_parser("revoke", help="revoke a token at once")
    rev.add_argument("name")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Carry out one tokens action through the client."""
    from ..client import connect
    from ..display import print_listing

    client = connect()
    if args.action == "add":
        issued = client.add_token(args.name, role=args.role)
        print(f"Token for {issued['name']} ({issued['role']}), shown only now:\n")
        print(f"    {issued['token']}\n")
        print("Give it to the user; their clients send it as the API key "
              "(JUPYTER_LLM_TOKEN, or the openai client's api_key).")
        return 0
    if args.action == "revoke":
        client.revoke_token(args.name)
        print(f"Revoked the token of {args.name}.")
        return 0
    print_listing(client.tokens(), as_json=args.json, line=_token_line,
                  empty="No tokens issued yet: `jupyter llm tokens add NAME --role ROLE`.")
    return 0


def _token_line(t: dict) -> str:
    when = _dt.datetime.fromtimestamp(t["created_at"]).strftime("%Y-%m-%d %H:%M")
    return f"{t['name']:24} {t['role']:12} issued {when}"
