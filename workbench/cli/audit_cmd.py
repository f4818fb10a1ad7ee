"""`workbench audit`: verify, prove, export and show checkpoints of the signed audit log.

Thin wrappers: parse, call `workbench.audit`, print. Every failure is one line and a non-zero exit:
a log that does not verify exits 1 naming the first bad entry, checkpoint or key; bad input exits 2.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from workbench.audit import AuditError, AuditLog, Checkpoint, KeyStore, PublicKey, VerifyResult
from workbench.audit.export import ExportFilter, verify_export, write_export
from workbench.audit.head import HeadSigning, sign_head
from workbench.audit.store import AuditStore
from workbench.audit.verify import verify_store
from workbench.cli.common import VerificationFailed, one_line, open_project, project_option, say
from workbench.errors import UsageError


def parse_time(value: str | None, option: str) -> datetime | None:
    """ISO 8601 date or date-time; a time without a zone is taken as UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise UsageError(f"{option} {value!r} is not an ISO 8601 time", "e.g. 2025-01-31T14:00:00Z") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def read_pubkeys(files: tuple[Path, ...]) -> list[PublicKey]:
    keys = []
    for path in files:
        try:
            keys.append(PublicKey.parse(path.read_text(encoding="utf-8")))
        except OSError as exc:
            raise UsageError(f"cannot read the public key {path}: {exc.strerror or exc}") from exc
        except (ValueError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path} is not an Ed25519 public key (PEM, base64 or vkey): {exc}") from exc
    return keys


def read_checkpoint(path: Path | None) -> Checkpoint | None:
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the checkpoint {path}: {exc}") from exc
    try:
        return Checkpoint.from_note(text)
    except AuditError as exc:
        raise UsageError(f"{path} is not a checkpoint: {exc.message}") from exc


def _project_with_log(project_dir: Path):
    project = open_project(project_dir)
    if not project.audit_db.exists():
        raise AuditError(f"no audit log at {project.audit_db}", "nothing has been recorded in this project yet")
    return project


def _project_log_path(project_dir: Path) -> Path:
    return _project_with_log(project_dir).audit_db


def _report(result: VerifyResult) -> None:
    if not result.ok:
        raise VerificationFailed(result.first_error or "verification failed")
    say(result.message())
    if result.vkey:
        say(f"verifier key {result.vkey}")
    if result.witness:
        say(f"this machine: {one_line(result.witness)}")
    for warning in result.warnings:
        say(f"warning: {one_line(warning)}")


@click.group()
def audit() -> None:
    """Verify, prove and export the signed audit log."""


@audit.command()
@project_option
@click.option("--pubkey", "pubkeys", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Trust only this public key (PEM, base64 or signed-note vkey); repeatable.")
@click.option("--checkpoint", "checkpoint_file", type=click.Path(dir_okay=False, path_type=Path),
              help="An earlier checkpoint you kept: prove the log only grew since.")
@click.option("--export", "export_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Verify this JSONL export offline instead of a project.")
@click.option("--require-witness", is_flag=True, help="Fail unless a registered witness cosigned the newest checkpoint.")
@click.option("--proof", "proof_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Check this C2SP tlog-proof file (from `audit prove --out`) offline instead of a project.")
@click.option("--witness", "witness_vkeys", multiple=True, metavar="VKEY",
              help="With --export: trust this witness key (its vkey) for cosignatures, besides the ones "
                   "registered here; repeatable.")
def verify(project_dir: Path, pubkeys: tuple[Path, ...], checkpoint_file: Path | None,
           export_file: Path | None, require_witness: bool = False, proof_file: Path | None = None,
           witness_vkeys: tuple[str, ...] = ()) -> None:
    """Recompute the chain and the tree and check every signature; exit 1 naming the first problem."""
    pinned = read_pubkeys(pubkeys)
    reference = read_checkpoint(checkpoint_file)
    if proof_file is not None:
        _verify_proof(proof_file, pinned)
        return
    if export_file is not None:
        if not export_file.is_file():
            raise UsageError(f"no export file at {export_file}")
        result = verify_export(export_file, pinned or None, reference, _witness_keys(witness_vkeys))
        _report(result)
        from workbench.cli.witness_cmd import show_witness_report  # the export's checkpoints' cosignatures

        if result.cosignatures is not None:
            show_witness_report(result.cosignatures, require_witness)
        return
    if witness_vkeys:
        raise UsageError("--witness trusts a witness key for an --export file; for a project, register it: "
                         "workbench audit witness add -p DIR URL VKEY")
    store = AuditStore(_project_log_path(project_dir), create=False, readonly=True)
    try:
        _report(verify_store(store, pinned=pinned or None, reference=reference, key_store=KeyStore()))
        from workbench.cli.witness_cmd import verify_witnesses  # witnesses: each checkpoint's cosignatures

        verify_witnesses(store, require_witness)
    finally:
        store.close()


@audit.command()
@click.argument("seq", type=int)
@project_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a C2SP tlog-proof@v1 file (checkable offline by any transparency-log tool).")
def prove(seq: int, project_dir: Path, out: Path | None) -> None:
    """Prove that entry SEQ (numbered from 0) is in the latest signed checkpoint; print or write the proof."""
    project = _project_with_log(project_dir)
    _sign_head(project)  # a proof of an entry no checkpoint covers yet would not exist
    store = AuditStore(project.audit_db, create=False, readonly=True)
    try:
        from workbench.audit.proof import cosigned, make_proof, signer_vkey
        from workbench.audit.verify import inclusion_proof

        with store.snapshot():
            proof = inclusion_proof(store, seq)
            if out is not None and proof.verified:
                vkey = signer_vkey(store, proof.checkpoint)
                note, cosignatures = cosigned(store, proof.checkpoint)
                tlog_proof = make_proof(store, seq, note, vkey)
    finally:
        store.close()
    if not proof.verified:
        raise VerificationFailed(f"entry {seq}: its inclusion proof does not lead to the signed root of "
                                 f"checkpoint #{proof.checkpoint.id}")
    if out is None:
        say(proof.to_text())
        say("checkpoint:")
        say(proof.checkpoint.to_note(), nl=False)
        return
    _write_atomically(out, tlog_proof.to_text())
    say(f"wrote the tlog-proof of entry {seq} in the tree of size {proof.size} (checkpoint #{proof.checkpoint.id}, "
        f"{cosignatures} cosignature(s)) to {out}")
    say(f"verifier key {vkey or '(no stored key verifies the checkpoint)'}")


def _verify_proof(path: Path, pinned: list[PublicKey]) -> None:
    """`verify --proof FILE`: the checkpoint is signed by a trusted key and the path leads to its root."""
    import json

    from workbench.audit.proof import MAX_PROOF_BYTES, TlogProof, check_proof

    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_PROOF_BYTES + 1)
        text = data.decode("utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read the proof {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is not a tlog-proof file (not UTF-8 text)") from exc
    proof = TlogProof.parse(text)
    keys = pinned or KeyStore().known_keys()
    if not keys:
        raise UsageError("this machine has no audit key to check the proof with",
                         "pass --pubkey FILE with the log's key (its vkey, as the proof's extra names it)")
    check = check_proof(proof, keys)
    if not check.ok:
        raise VerificationFailed(check.why)
    cp, signer = check.checkpoint, check.signer
    assert cp is not None and signer is not None
    try:
        header = json.loads(proof.leaf_data or b"{}")
        what = f" ({header['kind']}, session {header['session_id']}, {header['time']})"
    except (ValueError, KeyError, TypeError):
        what = ""
    others = len(cp.signatures) - 1
    say(one_line(f"ok: entry {proof.index}{what} is in log {cp.origin} of size {cp.size}, root {cp.root_hex}, "
                 f"signed by key {signer.fingerprint}") + (f"; {others} more signature line(s) (witness "
                                                            "cosignatures) not checked here" if others else ""))
    if not pinned:
        say("warning: checked against this machine's own key(s); pass --pubkey with the key you trust")


def _witness_keys(vkeys: tuple[str, ...]):  # noqa: ANN202 - list[WitnessKey]
    """The witness keys given with --witness (bad input: one line, exit 2)."""
    from workbench.audit.cosign import WitnessKey

    keys = []
    for vkey in vkeys:
        try:
            keys.append(WitnessKey.parse(vkey))
        except ValueError as exc:
            raise UsageError(f"bad witness verifier key {vkey[:60]!r}: {exc}") from exc
    return keys


def _write_atomically(out: Path, text: str) -> None:
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, out)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _sign_head(project) -> HeadSigning:
    """Sign the head before it leaves the machine (the caller says why not, when it could not be)."""
    signing = sign_head(project.audit_db, project_root=project.root, origin=project.settings().audit.origin or None)
    if signing.witness_problem:
        say(f"warning: {one_line(signing.witness_problem)}", err=True)
    return signing


@audit.command()
@project_option
@click.option("--since", help="Only entries at or after this time (ISO 8601; UTC when no zone).")
@click.option("--until", help="Only entries at or before this time (ISO 8601; UTC when no zone).")
@click.option("--session", help="Only entries of this session.")
@click.option("--format", "fmt", type=click.Choice(["jsonl"]), default="jsonl", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="The file to write (default: stdout).")
def export(project_dir: Path, since: str | None, until: str | None, session: str | None, fmt: str,
           out: Path | None) -> None:
    """Write entries, checkpoints, proofs and public keys, for offline `verify --export`."""
    flt = ExportFilter(parse_time(since, "--since"), parse_time(until, "--until"), session)
    if flt.since and flt.until and flt.since > flt.until:
        raise UsageError("--since is after --until")
    project = _project_with_log(project_dir)
    signing = _sign_head(project)  # nothing is exported unsigned that this machine can sign
    log = AuditLog.open_path(project.audit_db, create=False, readonly=True)
    try:
        latest = log.latest_checkpoint()
        unsigned = log.size() - (latest.size if latest else 0)
        if out is None:
            count = write_export(log, sys.stdout, flt)
        else:
            tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
            try:
                with tmp.open("w", encoding="utf-8") as handle:
                    count = write_export(log, handle, flt)
                os.replace(tmp, out)
            except OSError as exc:
                raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from exc
            finally:
                tmp.unlink(missing_ok=True)
            say(f"exported {count} entries to {out}", err=True)
        if unsigned:
            why = one_line(signing.reason or "signed after the export began")
            say(f"note: the {unsigned} newest entries are covered by no signature ({why}) and were left out",
                err=True)
    finally:
        log.close()


@audit.command()
@project_option
@click.option("--new", "sign_now", is_flag=True, help="Sign the current head first.")
def checkpoint(project_dir: Path, sign_now: bool) -> None:
    """Print the latest checkpoint as a C2SP signed note."""
    path = _project_log_path(project_dir)
    if sign_now:
        project = open_project(project_dir)
        with AuditLog.open(project, create=False) as log:
            cp = log.checkpoint()
            problem = log.witness_problem
        if problem:
            say(f"warning: {one_line(problem)}", err=True)
    else:
        with AuditLog.open_path(path, create=False, readonly=True) as log:
            found = log.latest_checkpoint()
        if found is None:
            raise AuditError("no checkpoint has been signed yet", "sign one with: workbench audit checkpoint --new")
        cp = found
    say(cp.to_note(), nl=False)


@audit.command()
@click.option("--pem", is_flag=True, help="Print only the public key, as PEM (for --pubkey).")
@click.option("--rotate", is_flag=True, help="Replace the signing key; old checkpoints stay verifiable.")
@click.option("-p", "--project", "project_dir", type=click.Path(path_type=Path), default=None,
              help="Also give the vkey of this project's log (named after its origin, as its checkpoints are).")
def key(pem: bool, rotate: bool, project_dir: Path | None) -> None:
    """Show this user's audit signing key: fingerprint, where it is kept, public key."""
    store = KeyStore()
    if rotate:
        store.rotate()
        store = KeyStore()
    info = store.info(create=True)
    assert info is not None
    public = PublicKey.parse(info.public_key)
    if pem:
        say(public.pem(), nl=False)
        return
    say(f"fingerprint {info.fingerprint}")
    say(f"kept in     {info.backend}")
    if project_dir is not None:
        from workbench.audit.log import default_origin

        project = open_project(project_dir)
        origin = project.settings().audit.origin or default_origin(project.id)
        say(f"vkey        {public.vkey(origin)}  (this project's log; give it to a witness or a reviewer)")
    else:
        say(f"vkey        {public.vkey('workbench-audit')}  (a log's own vkey is named after its origin: "
            "workbench audit key -p DIR)")
    if info.warning():
        say(f"warning: {info.warning()}")


from workbench.cli.witness_cmd import audit_witness  # noqa: E402 - `audit witness` lives with the witness commands

audit.add_command(audit_witness)

from workbench.cli.sbom_cmd import sbom  # noqa: E402 - `audit sbom` lives in its own module

audit.add_command(sbom)

from workbench.cli.replay_cmd import replay  # noqa: E402 - `audit replay` lives in its own module

audit.add_command(replay)
