"""Draw assets/logo.png: a teal rounded square with a white cross, 256x256 pixels.

Pixels outside the rounded corners are transparent.

Run from the repository root: `python scripts/make_logo.py`. The output is deterministic, so rerunning it
leaves the committed file unchanged.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 256
# Drawing at 4x and downsampling smooths the curved edges, which ImageDraw does not antialias.
SCALE = 4
TEAL = (13, 148, 136, 255)
WHITE = (255, 255, 255, 255)
OUTPUT = Path(__file__).resolve().parents[1] / 'assets' / 'logo.png'


def draw_logo() -> Image.Image:
    """Return the logo as an RGBA image of SIZE x SIZE pixels."""
    big = SIZE * SCALE
    image = Image.new('RGBA', (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((0, 0, big - 1, big - 1), radius=big // 5, fill=TEAL)

    # A plus-shaped cross from two bars with rounded ends, centred on the square.
    arm_length = big * 0.56
    arm_width = big * 0.18
    centre = big / 2
    bar_radius = int(arm_width / 3)
    draw.rounded_rectangle((centre - arm_width / 2, centre - arm_length / 2,
                            centre + arm_width / 2, centre + arm_length / 2), radius=bar_radius, fill=WHITE)
    draw.rounded_rectangle((centre - arm_length / 2, centre - arm_width / 2,
                            centre + arm_length / 2, centre + arm_width / 2), radius=bar_radius, fill=WHITE)
    return image.resize((SIZE, SIZE), Image.Resampling.LANCZOS)


def main() -> None:
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    draw_logo().save(OUTPUT, format='PNG', optimize=True)
    print(f'wrote {OUTPUT}')


if __name__ == '__main__':
    main()
