# The pipeline's last stage: asks count@top for the N most frequent words (N is the body,
# default 10) and streams a summary, one line per chunk.
use strict;
use warnings;
use JSON::PP ();
use Cocaine::Worker;

handler summary => sub {
    my ($req, $res) = @_;
    my $limit = $req->body || 10;
    my $top = JSON::PP::decode_json($req->call('count@top', $limit, { timeout => 10 }));
    $res->write("$top->{lines} lines, $top->{words} distinct words\n");
    my $rank = 0;
    for my $entry (@{ $top->{top} }) {
        my ($word, $count) = @$entry;
        $res->write(sprintf "%2d. %-12s %d\n", ++$rank, $word, $count);
    }
    $req->log->info('report', { words => scalar @{ $top->{top} } });
    return;
};
