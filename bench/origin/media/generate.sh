#!/usr/bin/env bash
# Regenerates the committed demo HLS media under bench/origin/media/vod/.
#
# Only maintainers run this (it needs ffmpeg with libx264); the origin, the tests and
# `npm start` use the committed files and never call ffmpeg. Output is deterministic
# enough to diff (bitexact flags, one encoder thread), but not guaranteed byte-identical
# across ffmpeg/x264 versions, so commit the regenerated files together.
#
# Titles (24 s, 4 s segments, keyframes forced on every segment boundary; the tone beeps
# once a second, and the title and clock are burned in when drawtext has a default font):
#   vod/bbb-test/  testsrc2 + 1 kHz tone, MPEG-TS segments (seg-N.ts)
#   vod/bars/      smptebars + 440 Hz tone, fMP4 segments (init.mp4 + seg-N.m4s, EXT-X-MAP)
# Renditions per title:
#   360p  640x360 H.264 Main     ~450 kbit/s + AAC-LC 48 kHz stereo 64 kbit/s
#   180p  320x180 H.264 Baseline ~180 kbit/s + AAC-LC 48 kHz stereo 48 kbit/s
set -euo pipefail

cd "$(dirname "$0")"
FFMPEG=${FFMPEG:-ffmpeg}
FFPROBE=${FFPROBE:-ffprobe}
DURATION_S=24
SEGMENT_S=4
FPS=25
GOP=$((SEGMENT_S * FPS))

command -v "$FFMPEG" >/dev/null || { echo "generate.sh: $FFMPEG not found" >&2; exit 1; }

# The burned-in clock needs drawtext and a usable default font; without either the
# media is still valid, just without the overlay.
overlay() {
  local label=$1
  local filter="drawtext=text='${label} %{pts\\:hms}':x=12:y=12:fontsize=28:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=6"
  if "$FFMPEG" -hide_banner -loglevel error -f lavfi -i "testsrc2=s=64x64:r=1:d=1" \
      -vf "$filter" -frames:v 1 -f null - >/dev/null 2>&1; then
    printf ',%s' "$filter"
  fi
}

# encode_title <title> <video source> <sine Hz> <ts|fmp4>
encode_title() {
  local title=$1 source=$2 freq=$3 kind=$4
  local out="$tmp/vod/$title"
  local ext=ts
  local -a kind_args=(-hls_segment_type mpegts)
  if [[ $kind == fmp4 ]]; then
    ext=m4s
    kind_args=(-hls_segment_type fmp4 -hls_fmp4_init_filename init.mp4)
  fi
  mkdir -p "$out"
  (
    cd "$out"
    "$FFMPEG" -hide_banner -loglevel error -y \
      -f lavfi -i "${source}=s=640x360:r=${FPS}:d=${DURATION_S}" \
      -f lavfi -i "sine=frequency=${freq}:beep_factor=4:sample_rate=48000:d=${DURATION_S}" \
      -filter_complex "[0:v]format=yuv420p$(overlay "$title"),split=2[v0][v1tmp];[v1tmp]scale=320:180[v1];[1:a]asplit=2[a0][a1]" \
      -map '[v0]' -map '[a0]' -map '[v1]' -map '[a1]' \
      -c:v libx264 -threads 1 -preset medium -pix_fmt yuv420p \
      -g "$GOP" -keyint_min "$GOP" -sc_threshold 0 \
      -force_key_frames "expr:gte(t,n_forced*${SEGMENT_S})" \
      -profile:v:0 main -level:v:0 3.0 -b:v:0 450k -maxrate:v:0 500k -bufsize:v:0 1000k \
      -profile:v:1 baseline -level:v:1 2.1 -b:v:1 180k -maxrate:v:1 200k -bufsize:v:1 400k \
      -c:a aac -profile:a aac_low -ar 48000 -ac 2 -b:a:0 64k -b:a:1 48k \
      -fflags +bitexact -flags:v +bitexact -flags:a +bitexact -map_metadata -1 \
      -f hls -hls_time "$SEGMENT_S" -hls_playlist_type vod -hls_list_size 0 -start_number 0 \
      "${kind_args[@]}" \
      -hls_segment_filename "%v/seg-%d.${ext}" \
      -master_pl_name master.m3u8 \
      -var_stream_map "v:0,a:0,name:360p v:1,a:1,name:180p" \
      "%v/index.m3u8"
    # With var_stream_map, ffmpeg 5.x names init segments init_<index>.mp4; every
    # rendition has its own directory, so plain init.mp4 is enough and easier to route.
    if [[ $kind == fmp4 ]]; then
      local i=0
      for rendition in 360p 180p; do
        mv "$rendition/init_$i.mp4" "$rendition/init.mp4"
        sed -i "s/init_$i\.mp4/init.mp4/" "$rendition/index.m3u8"
        i=$((i + 1))
      done
    fi
  )
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

encode_title bbb-test testsrc2 1000 ts
encode_title bars smptebars 440 fmp4

rm -rf vod
mv "$tmp/vod" vod

# Sanity check: every rendition's first segment must decode as H.264 + AAC-LC.
if command -v "$FFPROBE" >/dev/null; then
  for f in vod/*/*/seg-0.*; do
    input=$f
    [[ $f == *.m4s ]] && input="concat:$(dirname "$f")/init.mp4|$f"
    streams=$("$FFPROBE" -v error -show_entries stream=codec_name,profile -of csv=p=0 "$input" | grep . | sort -u | tr '\n' ' ')
    echo "$f: $streams"
  done
fi
du -sh vod
