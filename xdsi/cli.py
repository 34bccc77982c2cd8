"""The ``xdsi`` command: serve, import, init-db, delete, check-config."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from xdsi import __version__
from xdsi.config import ROLES, ConfigError, Settings

if TYPE_CHECKING:
    from xdsi.services.archive import Archive

DESCRIPTION = """\
xdsi is a DICOMweb archive that is growing into an IHE XDS-I.b imaging document source.
It serves STOW-RS (store), QIDO-RS (search) and WADO-RS (retrieve) over one index and one
store of DICOM files kept as received.

Settings come from, in order of precedence: command-line options, XDSI_* environment
variables (e.g. XDSI_DATABASE_URL, XDSI_STORAGE), the TOML file named by --config or
XDSI_CONFIG, and built-in defaults (SQLite at ./var/xdsi.db, files under ./var/store).
Run `xdsi check-config` to see the effective values and where each came from.
"""

EPILOG = """\
examples:
  xdsi serve                                serve on http://127.0.0.1:8080
  xdsi serve --bind 0.0.0.0:8080 --workers 4
  xdsi import /media/cdrom ~/studies/*.dcm  import files, folders and DICOMDIRs
  xdsi delete --force 1.2.3.4               delete study 1.2.3.4 and its files
  echo "$PASSWORD" | xdsi user add alice --role read --role store
  XDSI_DATABASE_URL=postgresql://xdsi@db/xdsi xdsi init-db
"""


IMPORT_DESCRIPTION = """\
Store every DICOM file found under the given paths into the archive (index and store).

accepted:
  - PS3.10 files (128-byte preamble, 'DICM', File Meta Information), kept byte for byte;
  - data sets without File Meta Information (implicit VR little endian, explicit VR little or
    big endian): xdsi writes the File Meta Information before the unchanged data set bytes;
  - folders, searched recursively in name order;
  - DICOMDIRs, recognised by their content whatever their file name: each contributes the
    files it references (within its folder), not itself.

skipped: files found in a folder that are plainly not DICOM (neither a PS3.10 file nor a data
set without File Meta Information: text, images, programs). They are counted as
"skipped (not DICOM)" and do not fail the import. A file named on the command line is never
skipped: if it is not DICOM, it fails.

At the end a summary counts stored, duplicate, failed and skipped files, with one line per
failure naming its reason. The exit status is 1 when any file failed (a DICOM file refused,
a file that cannot be read, a path that does not exist), 2 for bad settings, 0 otherwise.
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    explicit = {
        name: getattr(args, name)
        for name in ("bind", "workers", "threads", "database_url", "storage", "insecure")
        if getattr(args, name, None) is not None
    }
    try:
        settings = Settings.load(config_file=args.config, **explicit)
    except ConfigError as exc:
        print(f"xdsi: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if settings.log_level != "DEBUG":
        # Alembic logs each plugin it loads at INFO; the upgrade itself is logged by xdsi.
        logging.getLogger("alembic").setLevel(logging.WARNING)
    return int(args.run(settings, args) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xdsi",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"xdsi {__version__}")
    parser.add_argument("--config", metavar="FILE", help="TOML settings file (default: $XDSI_CONFIG)")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = _command(
        commands, "serve", _serve,
        "run the server (upgrades the schema and sweeps the store first)",
        "Upgrade the index schema, remove what an earlier crash left in the store, "
        "then serve STOW-RS, QIDO-RS and WADO-RS with gunicorn (xdsi's worker reads each request whole "
        "before a thread serves it; see docs/deployment.md). The start-up banner prints the URL of every service.",
    )
    serve.add_argument("--bind", metavar="HOST:PORT", help="address to listen on (default 127.0.0.1:8080)")
    serve.add_argument("--workers", type=int, metavar="N", help="worker processes (default 2)")
    serve.add_argument("--threads", type=int, metavar="N", help="threads per worker (default 8)")
    serve.add_argument("--no-access-log", action="store_true", help="do not log each request")
    serve.add_argument("--insecure", action="store_true", default=None,
                       help="serve beyond loopback without authentication (setting insecure)")

    importer = _command(
        commands, "import", _import, "store DICOM files, folders (recursively) and DICOMDIRs", IMPORT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    importer.add_argument("paths", nargs="+", metavar="PATH", help="file, folder or DICOMDIR")
    importer.add_argument("--batch", type=int, default=32, metavar="N",
                          help="instances per database transaction (default 32)")
    importer.add_argument("--no-progress", action="store_true", help="no progress bar")

    init_db = _command(
        commands, "init-db", _init_db,
        "create or upgrade the index schema and the store folders",
        "Create the database schema (or upgrade it to this version) and the store folders.",
    )

    deleter = _command(
        commands, "delete", _delete,
        "delete a study, a series or one instance (index rows and files)",
        "Delete a study, one of its series, or one instance: the index rows go in one "
        "transaction, then the files. Series, study and patient records left empty go too. Nothing "
        "is asked interactively. Deleting is refused unless the setting delete_enabled is true "
        "(XDSI_DELETE_ENABLED=true, which also allows DELETE over HTTP) or --force is given for "
        "this one run. The exit status is 0 when something was deleted, 1 when nothing was "
        "(refused, malformed UID, or not in the archive).",
    )
    deleter.add_argument("study", metavar="STUDY", help="Study Instance UID")
    deleter.add_argument("series", nargs="?", metavar="SERIES", help="Series Instance UID: only this series")
    deleter.add_argument("instance", nargs="?", metavar="INSTANCE", help="SOP Instance UID: only this instance")
    deleter.add_argument("--force", action="store_true",
                         help="delete even though delete_enabled is off (an operator's one-off decision)")

    user = commands.add_parser(
        "user", help="manage the users of HTTP Basic authentication (the users_file setting)",
        description="Manage the users file that HTTP Basic authentication (auth = basic) checks.",
    )
    user_commands = user.add_subparsers(title="user commands", metavar="COMMAND", required=True)
    user_add = _command(
        user_commands, "add", _user_add, "add a user, or set its password and roles anew",
        "Add NAME to the users file (created if missing), or replace its password, roles and patient "
        "domains. The password is asked twice on a terminal; otherwise it is the first line of standard "
        "input. It is stored as a salted scrypt hash. The server reads the file again when it changes.",
    )
    user_add.add_argument("name", metavar="NAME", help="user name (no colon)")
    user_add.add_argument("--role", action="append", choices=ROLES, metavar="ROLE",
                          help=f"a role of the user: {', '.join(ROLES)} (repeat for several; default read)")
    user_add.add_argument("--issuer", action="append", metavar="ISSUER",
                          help="an Issuer of Patient ID whose patients the user may see, in searches, metadata and "
                               "retrievals of every protocol (repeat for several; '' for patients recorded without "
                               "an issuer; default: every patient)")
    user_remove = _command(user_commands, "remove", _user_remove, "remove a user", "Remove NAME from the users file.")
    user_remove.add_argument("name", metavar="NAME", help="user name")

    _command(
        commands, "check-config", _check_config,
        "print the effective settings and where each came from (secrets masked)",
        "Validate the settings and print each value with its source: argument, "
        "environment, config file or default. Secrets are masked. Exit status 2 if invalid.",
    )
    for opens_archive in (serve, importer, init_db, deleter):
        _storage_options(opens_archive)
    return parser


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    run: Callable[[Settings, argparse.Namespace], int],
    summary: str,
    description: str,
    *,
    formatter_class: type[argparse.HelpFormatter] = argparse.HelpFormatter,
) -> argparse.ArgumentParser:
    """A subcommand that runs ``run``."""
    parser = commands.add_parser(name, help=summary, description=description, formatter_class=formatter_class)
    parser.set_defaults(run=run)
    return parser


def _storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", dest="database_url", metavar="URL",
                        help="index database (default sqlite:///./var/xdsi.db)")
    parser.add_argument("--storage", metavar="DIR", help="blob store folder (default ./var/store)")


def _open_prepared(settings: Settings) -> Archive:
    from xdsi.services.archive import Archive

    archive = Archive.open(settings)
    archive.prepare()
    return archive


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from xdsi.app import create_app
    from xdsi.server import Server

    if not settings.auth_mechanisms and settings.binds_beyond_loopback:
        if not settings.insecure:
            print(f"xdsi serve: refused: {settings.bind} is reachable beyond this machine and no authentication "
                  "is configured (set auth, e.g. XDSI_AUTH=basic with a users_file, or XDSI_AUTH=mtls with client "
                  "certificates); to serve anyone who can "
                  "reach the port, say so with --insecure or XDSI_INSECURE=true", file=sys.stderr)
            return 2
        logging.getLogger("xdsi").warning(
            "INSECURE: serving %s without authentication: anyone who reaches this port may read, store "
            "and delete every study", settings.bind)
    if settings.tls_enabled:
        from xdsi.security.tls import server_context

        try:
            server_context(settings)  # each worker builds its own; a key that cannot be used stops here
        except ConfigError as exc:
            print(f"xdsi: {exc}", file=sys.stderr)
            return 2
    archive = _open_prepared(settings)
    try:
        endpoints = create_app(settings, archive).config["XDSI_ENDPOINTS"]
    except ConfigError as exc:  # what only building the app can check, e.g. the WS-Security key
        print(f"xdsi: {exc}", file=sys.stderr)
        return 2
    finally:
        archive.close()
    host, port = settings.host_port
    scheme = "https" if settings.tls_enabled else "http"
    origin = f"{scheme}://{host if ':' not in host else f'[{host}]'}:{port}"
    print(f"xdsi {__version__} on {origin}  (database {settings.display_database_url}, store {settings.storage})")
    print(f"  authentication: {', '.join(settings.auth_mechanisms) or 'none'}")
    if settings.tls_enabled:
        print(f"  TLS: 1.2 and 1.3, client certificates {settings.tls_client_cert}")
    width = max(len(endpoint.name) for endpoint in endpoints)
    for name, path, enabled in endpoints:
        print(f"  {name:<{width}}  {origin}{path}{'' if enabled else '  (disabled)'}")
    sys.stdout.flush()
    # PS3.15 A.5.3.1: the application's start and stop, from the process that outlives the workers.
    launcher = getpass.getuser()
    archive.auditor.application_activity(True, launcher)
    try:
        Server(settings, access_log=not args.no_access_log).run()
    finally:
        archive.auditor.application_activity(False, launcher)
        archive.auditor.close()
    return 0


def _import(settings: Settings, args: argparse.Namespace) -> int:
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from xdsi.services.importer import discover, import_files

    archive = _open_prepared(settings)
    try:
        found = discover(args.paths, exclude=archive.own_files())
        print(f"found {len(found.files)} files ({found.dicomdirs} DICOMDIRs expanded, "
              f"{len(found.skipped)} not DICOM skipped)", file=sys.stderr)
        # Log records go through tqdm.write, which clears the bar and draws it again below them.
        with logging_redirect_tqdm(), tqdm(total=len(found.files), unit="file", disable=args.no_progress,
                                           file=sys.stderr, dynamic_ncols=True) as bar:
            report = import_files(archive.store, found.files, max(1, args.batch), progress=bar.update)
    finally:
        archive.close()
    failures = found.problems + report.failures
    for problem in report.warnings:
        print(f"warning: {problem.path}: {problem.reason}", file=sys.stderr)
    for problem in failures:
        print(f"failed: {problem.path}: {problem.reason}", file=sys.stderr)
    print(f"stored {report.stored}, duplicate {report.duplicates}, failed {len(failures)}, "
          f"skipped (not DICOM) {len(found.skipped)}")
    return 1 if failures else 0


def _init_db(settings: Settings, args: argparse.Namespace) -> int:
    from xdsi.repository.db import current_revision

    archive = _open_prepared(settings)
    try:
        print(f"schema at revision {current_revision(archive.engine)}; store at {archive.blobs.root}")
    finally:
        archive.close()
    return 0


def _delete(settings: Settings, args: argparse.Namespace) -> int:
    from xdsi.errors import XdsiError
    from xdsi.services.retrieve import Target

    if not (settings.delete_enabled or args.force):
        print("xdsi delete: refused: delete_enabled is off (set XDSI_DELETE_ENABLED=true, "
              "or pass --force for this run)", file=sys.stderr)
        return 1
    try:
        target = Target.checked(args.study, args.series, args.instance)
        archive = _open_prepared(settings)
        try:
            deleted = archive.deleter.delete(target)
        finally:
            archive.close()
    except XdsiError as exc:
        print(f"xdsi delete: {exc}", file=sys.stderr)
        return 1
    print(deleted.describe())
    return 0


def _user_add(settings: Settings, args: argparse.Namespace) -> int:
    from xdsi.security.basic import add_user

    if settings.users_file is None:
        print("xdsi user add: no users_file is set (XDSI_USERS_FILE or the TOML file)", file=sys.stderr)
        return 2
    password = _read_password()
    try:
        created = add_user(settings.users_file, args.name, password, args.role or ["read"], args.issuer)
    except ValueError as exc:
        print(f"xdsi user add: {exc}", file=sys.stderr)
        return 1
    domains = "" if args.issuer is None else f"; patients of {', '.join(repr(i) for i in sorted(set(args.issuer)))}"
    print(f"{'added' if created else 'updated'} {args.name} ({', '.join(sorted(set(args.role or ['read'])))}"
          f"{domains}) in {settings.users_file}")
    return 0


def _read_password() -> str:
    """Asked twice on a terminal; else the first line of standard input (a pipe, a file, a secret store)."""
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        return first if getpass.getpass("again: ") == first else ""
    return sys.stdin.readline().rstrip("\r\n")


def _user_remove(settings: Settings, args: argparse.Namespace) -> int:
    from xdsi.security.basic import remove_user

    if settings.users_file is None or not remove_user(settings.users_file, args.name):
        print(f"xdsi user remove: no user {args.name!r} in {settings.users_file}", file=sys.stderr)
        return 1
    print(f"removed {args.name} from {settings.users_file}")
    return 0


def _check_config(settings: Settings, args: argparse.Namespace) -> int:
    rows = settings.describe()
    width = max(len(key) for key, *_ in rows)
    for key, value, source, doc in rows:
        print(f"{key:<{width}} = {value}  [{source}]  # {doc}")
    return 0
