# The smallest Perl app: one handler per event.
use strict;
use warnings;
use Cocaine::Worker;

# Returns the request body unchanged.
handler echo => sub {
    my ($req) = @_;
    return $req->body;
};

handler ping => sub { return 'pong' };
