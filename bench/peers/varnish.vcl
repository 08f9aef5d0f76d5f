# Varnish as an HLS edge cache, configured like the streamedge edge under test.
# bench/peers/start-peer.ts fills in the double-brace placeholders and runs
#   varnishd -F -n DIR -a LISTEN -f DIR/bench.vcl -s malloc,MEMORY -T none -p timeout_idle=5
# Compared with the edge's defaults (config/params.ts):
#   memory tier     -s malloc with the edge's edge.cache.memory.maxBytes (open-source Varnish has
#                   no persistent disk tier; file storage is an mmap'd cache, not a second LRU tier)
#   shared fill     Varnish's waiting list plus streaming: waiters read the object as it arrives
#   ranges          served from the object; a miss fetches the whole object (Range is not sent upstream)
#   freshness       the origin's Cache-Control, as on the edge (builtin VCL otherwise)
#   timeouts        edge.upstream.* (connect 3 s, first byte and idle 10 s), client idle 5 s
vcl 4.1;

backend origin {
  .host = "{{originHost}}";
  .port = "{{originPort}}";
  .connect_timeout = 3s;
  .first_byte_timeout = 10s;
  .between_bytes_timeout = 10s;
  .max_connections = 128;
}

sub vcl_recv {
  if (req.url == "/_bench/ready") {
    return (synth(200, "ready"));
  }
}

sub vcl_backend_response {
  # Stream every fill to its waiters (the default since Varnish 4; stated so nobody has to look it up).
  set beresp.do_stream = true;
}

sub vcl_deliver {
  if (obj.hits > 0) {
    set resp.http.X-Bench-Cache = "HIT";
  } else {
    set resp.http.X-Bench-Cache = "MISS";
  }
}
