"""`cifar-synth publish`: upload an export, which is already a dataset repository, to the Hugging Face Hub."""

import re
from pathlib import Path

from cifar_synth.card import CARD_FILE, checked_license, set_license
from cifar_synth.errors import UserError, one_line
from cifar_synth.extras import require_extra
from cifar_synth.synthetic import MANIFEST, read_manifest

_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")


def publish_export(export_dir: str | Path, repo: str, private: bool = False, license_id: str | None = None) -> str:
    """Create the dataset repository `repo` ("user/name") if needed and upload the export to it; returns its URL.

    With `license_id` the export is first given that licence (`cifar_synth.card.set_license`: its card and manifest,
    in the folder as on the Hub).

    The token is the usual Hugging Face one: `HF_TOKEN`, or the one `hf auth login` saved. The upload is
    huggingface_hub's `upload_folder`, which commits large folders in several parts and, run again after an
    interruption, skips what already arrived.
    """
    export_dir = Path(export_dir)
    _check_export(export_dir)
    if not _REPO_ID.fullmatch(repo):
        raise UserError(f"--repo must look like USER/NAME, got {repo!r}")
    if license_id is not None:
        license_id = checked_license(license_id)
    hub = require_extra("huggingface_hub", "hub", "publish")
    HfApi, get_token = hub.HfApi, hub.get_token
    token = get_token()
    if token is None:
        raise UserError("no Hugging Face token: set HF_TOKEN or run `hf auth login`, then publish again")
    api = HfApi(token=token)
    if license_id is not None:
        set_license(export_dir, license_id)
    manifest = read_manifest(export_dir)
    try:
        url = api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(repo_id=repo, repo_type="dataset", folder_path=export_dir,
                          commit_message=f"Upload {manifest['name']} with cifar-synth")
    except Exception as error:  # huggingface_hub and httpx raise many types: offline, refused, rate-limited
        raise UserError(f"publishing {export_dir} to {repo} failed: {one_line(error)}; nothing is published "
                        "until an upload finishes (publish again to resume)") from None
    return str(url)


def _check_export(export_dir: Path) -> None:
    if not (export_dir / MANIFEST).is_file():
        raise UserError(f"{export_dir} is not a cifar-synth export (no {MANIFEST})")
    if not (export_dir / CARD_FILE).is_file():
        raise UserError(f"{export_dir} has no dataset card ({CARD_FILE}): it was exported by an older cifar-synth; "
                        "export it again to publish it")

