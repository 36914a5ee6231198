# Counts words and lines of a body streamed in chunks of any size, without holding it whole.
use strict;
use warnings;
use Cocaine::Worker;

handler wordcount => sub {
    my ($req) = @_;
    my ($words, $lines, $in_word) = (0, 0, 0);
    $req->each_chunk(sub {
        my ($chunk) = @_;
        $lines += ($chunk =~ tr/\n//);
        # A word split across chunks is counted once, in the chunk where it starts.
        $words-- if $in_word && $chunk =~ /\A\S/;
        $words++ while $chunk =~ /\S+/g;
        $in_word = $chunk =~ /\S\z/ ? 1 : 0 if length $chunk;
    });
    return { words => $words, lines => $lines };  # a hash ref is sent as JSON
};
