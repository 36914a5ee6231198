#!/usr/bin/perl
# The cocaine Perl worker: started by the engine as `perl cocaine_worker.pl` in the app's
# directory; loads the app (COCAINE_ENTRYPOINT) and serves it (Cocaine/Worker.pm).
use strict;
use warnings;
BEGIN {
    (my $dir = __FILE__) =~ s{/[^/]*$}{};
    unshift @INC, $dir eq __FILE__ ? '.' : $dir;
}
use Cocaine::Worker ();

Cocaine::Worker::run();
