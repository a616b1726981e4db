"""Make the home-screen icons under assets/icons/ from assets/logo.png.

- icon-192.png and icon-512.png: the logo as it is, with transparent corners (manifest purpose "any");
- icon-maskable-512.png: the logo's cross on a full square of the logo's teal, small enough to stay inside
  the circle of 80% diameter that launchers may crop to (manifest purpose "maskable");
- apple-touch-icon.png: the same as the maskable icon at 180x180 pixels, because iOS fills transparent
  pixels with black and rounds the corners itself.

Run from the repository root after changing the logo: `python scripts/make_icons.py`. The output is
deterministic, so rerunning it leaves the committed files unchanged.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

ASSETS = Path(__file__).resolve().parents[1] / 'assets'
LOGO = ASSETS / 'logo.png'
ICONS = ASSETS / 'icons'
# The logo's background colour (see scripts/make_logo.py), used to fill the square of the maskable icons.
LOGO_TEAL = (13, 148, 136, 255)
# The maskable icons use the centre of the logo: this share of its width is cut off on each side. The
# rounded corners (radius 20% of the width) lie outside the cut, and the cross (56% of the width) inside.
LOGO_MARGIN_SHARE = 0.15
# Share of the icon's width that the cross spans. Launchers may crop to a circle of 80% diameter, and
# 45% keeps the whole cross well inside it.
CROSS_SHARE = 0.45
CROSS_SHARE_OF_LOGO = 0.56


def scaled_logo(logo: Image.Image, size: int) -> Image.Image:
    """Return the logo resized to `size` x `size` pixels."""
    return logo.resize((size, size), Image.Resampling.LANCZOS)


def full_bleed_icon(logo: Image.Image, size: int) -> Image.Image:
    """Return an opaque square icon: the centre of the logo, with the cross at CROSS_SHARE, on the logo's teal."""
    margin = round(logo.width * LOGO_MARGIN_SHARE)
    centre = logo.crop((margin, margin, logo.width - margin, logo.height - margin))
    inner = round(size * CROSS_SHARE * centre.width / (logo.width * CROSS_SHARE_OF_LOGO))
    icon = Image.new('RGBA', (size, size), LOGO_TEAL)
    offset = (size - inner) // 2
    icon.alpha_composite(scaled_logo(centre, inner), (offset, offset))
    return icon.convert('RGB')


def main() -> None:
    logo = Image.open(LOGO).convert('RGBA')
    ICONS.mkdir(parents=True, exist_ok=True)
    outputs = {
        'icon-192.png': scaled_logo(logo, 192),
        'icon-512.png': scaled_logo(logo, 512),
        'icon-maskable-512.png': full_bleed_icon(logo, 512),
        'apple-touch-icon.png': full_bleed_icon(logo, 180),
    }
    for name, image in outputs.items():
        path = ICONS / name
        image.save(path, format='PNG', optimize=True)
        print(f'wrote {path}')


if __name__ == '__main__':
    main()
