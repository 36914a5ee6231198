# Streaming both ways: an iterator (or $res->write) for results, each_chunk for bodies.
use strict;
use warnings;
use Cocaine::Worker;

# Streams N chunks "0\n", "1\n", ... where N is the request body (a decimal number).
handler count => sub {
    my ($req) = @_;
    my $n = $req->body || 0;
    my $i = 0;
    return sub { $i < $n ? $i++ . "\n" : undef };
};

# Streams the body back uppercased, each chunk as soon as it arrives.
handler upper => sub {
    my ($req, $res) = @_;
    $req->each_chunk(sub { $res->write(uc $_[0]) });
    return;
};
