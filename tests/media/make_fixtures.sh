#!/usr/bin/env bash
# Makes the real media files the tests send (committed, so the tests need none of these tools):
# espeak-ng and ffmpeg (Debian packages) for sound, pictures and video; fpdf2 (PyPI) for the PDF.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
espeak-ng -w "$tmp/voice.wav" "What is the capital of France? Please answer in one word."
ffmpeg -loglevel error -y -i "$tmp/voice.wav" -c:a libopus -b:a 16k -ac 1 -ar 48000 voice.ogg
espeak-ng -w "$tmp/song.wav" "This is a short audio file about the weather in Paris."
ffmpeg -loglevel error -y -i "$tmp/song.wav" -c:a libmp3lame -b:a 32k audio.mp3
for i in 1 2 3; do
    ffmpeg -loglevel error -y -f lavfi -i "testsrc=size=160x120:rate=1:duration=1" -vf "hue=h=$((i * 100))" \
        -frames:v 1 "photo$i.jpg"
done
ffmpeg -loglevel error -y -f lavfi -i "smptebars=size=64x64" -frames:v 1 picture.png
ffmpeg -loglevel error -y -f lavfi -i "testsrc=size=128x128:rate=1" -frames:v 1 -c:v libwebp sticker.webp
ffmpeg -loglevel error -y -f lavfi -i "testsrc=size=160x120:rate=10:duration=2" -i "$tmp/voice.wav" \
    -c:v libx264 -pix_fmt yuv420p -c:a aac -shortest -movflags +faststart video.mp4
ffmpeg -loglevel error -y -f lavfi -i "testsrc=size=240x240:rate=10:duration=2" -c:v libx264 -pix_fmt yuv420p \
    video_note.mp4
printf 'city,country,population\nParis,France,2102650\nBerlin,Germany,3878100\nMadrid,Spain,3332035\n' > table.csv
printf '# Notes\n\n- first point\n- second point\n' > notes.md
python3 - <<'PY'
from fpdf import FPDF

pdf = FPDF()
pdf.set_font("Helvetica", size=14)
for page in range(1, 31):
    pdf.add_page()
    pdf.cell(text=f"Page {page} of the annual report.")
    pdf.ln(10)
    pdf.multi_cell(w=0, text=("Revenue grew in every quarter. " * 40) + f"(page {page})")
pdf.output("report.pdf")
PY
# A file that is not what its name says: a PNG's bytes under a .pdf name.
cp picture.png not_a.pdf
ls -l
