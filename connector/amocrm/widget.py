"""`repeat-sales amocrm widget`: the widget archive an amoCRM integration uploads.

Doc: developers.kommo.com/docs/widget-structure and /docs/manifest-json - a zip with `manifest.json`
(widget name and texts as i18n keys, `interface_version` 2, `locale`, `locations`, `settings`,
`advanced.title` for the `advanced_settings` page), `script.js`, `i18n/<lang>.json` and `images/`
(logo.png 130x100, logo_min.png 84x84, logo_main.png 400x272, logo_medium.png 240x84,
logo_small.png 108x108). Locations: `lcard-1`, `ccard-1`, `comcard-1` (the cards' right column) and
`advanced_settings` (a page of its own in Settings). The script only frames our pages, so the
archive changes only when our server's address does.
"""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from pathlib import Path

from connector.amocrm.widget_script import SCRIPT
from connector.errors import InputError

VERSION = "1.0.0"
LOCATIONS = ["lcard-1", "ccard-1", "comcard-1", "advanced_settings"]
IMAGES = {"logo.png": (130, 100), "logo_min.png": (84, 84), "logo_main.png": (400, 272),
          "logo_medium.png": (240, 84), "logo_small.png": (108, 108)}
BRAND = (37, 99, 235)  # the report's blue

I18N = {
    "ru": {"widget": {"name": "Повторные продажи", "short_description": "Кому и когда продать снова",
                      "description": "Сегменты, прогноз и касания клиента в карточке; настройки плейбука.",
                      "loading": "Загрузка…", "failed": "Не удалось открыть страницу повторных продаж: "
                                                       "проверьте, что сервер приложения доступен."},
           "advanced": {"title": "Повторные продажи: плейбук"}},
    "en": {"widget": {"name": "Repeat sales", "short_description": "Who to sell to again, and when",
                      "description": "The customer's segment, forecast and touches in the card; playbook settings.",
                      "loading": "Loading…", "failed": "Could not open the repeat-sales page: check that "
                                                      "the app's server is reachable."},
           "advanced": {"title": "Repeat sales: playbook"}},
}


def manifest(base_url: str) -> dict:
    return {"widget": {"name": "widget.name", "description": "widget.description",
                       "short_description": "widget.short_description", "version": VERSION,
                       "interface_version": 2, "init_once": False, "locale": list(I18N),
                       "installation": True, "support": {"link": base_url, "email": ""}},
            "locations": LOCATIONS, "tour": {"is_tour": False}, "settings": {},
            "advanced": {"title": "advanced.title"}}


def png(width: int, height: int, rgb: tuple[int, int, int] = BRAND) -> bytes:
    """A plain one-colour PNG (no imaging library needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes(rgb) * width
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height, 9)) + chunk(b"IEND", b""))


def script(base_url: str) -> str:
    return SCRIPT.replace("__BASE_URL__", base_url.rstrip("/").replace("\\", "").replace("'", ""))


def build_widget(out: str | Path, base_url: str) -> Path:
    """Write the archive to `out`; `base_url` is the address amoCRM's pages reach `serve` at (https)."""
    if not base_url.startswith(("https://", "http://")):
        raise InputError(f"--url: {base_url!r} is not an http(s) address",
                         hint="the public address of `repeat-sales serve` (APP_PUBLIC_URL), e.g. https://rs.example.com")
    path = Path(out)
    try:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("manifest.json", json.dumps(manifest(base_url), ensure_ascii=False, indent=2))
            archive.writestr("script.js", script(base_url))
            for lang, words in I18N.items():
                archive.writestr(f"i18n/{lang}.json", json.dumps(words, ensure_ascii=False, indent=2))
            for name, (w, h) in IMAGES.items():
                archive.writestr(f"images/{name}", png(w, h))
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def run_widget(out: str, url: str | None) -> int:
    """`repeat-sales amocrm widget [--out FILE] [--url URL]`: the archive, from APP_PUBLIC_URL by default."""
    if not url:
        from connector.settings import load_settings

        url = load_settings().APP_PUBLIC_URL
    if not url:
        raise InputError("no address for the widget to call", hint="pass --url or set APP_PUBLIC_URL")
    path = build_widget(out, url)
    print(f"widget archive written to {path}: upload it in the integration's settings (amoCRM, Settings > Integrations)")
    return 0
